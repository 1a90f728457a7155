"""The desktop window: widgets, dialogs, item models and delegates (the only QtWidgets layer)."""
