"""A plugin module that fails while it is imported (``method: tests.sweeps.broken_import:M``), as
one with a typo in its code would."""

raise ZeroDivisionError("division by zero")
