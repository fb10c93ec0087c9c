"""HTML made in Python: mail bodies, times, SVG charts and the rows long pages repeat (see webarchive.templating)."""
