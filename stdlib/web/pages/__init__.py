"""The viewer's pages: one module each, on a shared layout."""
