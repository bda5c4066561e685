"""A module that does not import: ``eddic --import dbg_broken`` must say so clearly."""

raise RuntimeError("dbg_broken refuses to be imported")
