"""The commands of ``csat``, a module per family; :mod:`csat.cli.main` assembles them."""
