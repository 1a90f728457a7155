"""LoRACap: turn a folder of photos into a captioned, trainer-ready LoRA image dataset."""

__version__ = "0.1.0"
