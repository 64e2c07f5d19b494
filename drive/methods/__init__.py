"""The built-in pruning methods, one module each; every module's ``METHOD`` is its
:class:`drive.method.Method` (the registry, :data:`drive.method.METHODS`, imports a module the
first time its method is asked for)."""
