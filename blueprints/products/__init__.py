"""Products and stock in the desk: the list, the editor, stock adjustments and the
ledger (routes.py), import and export (imports.py), product images (images.py)."""
