"""HTML made in Python: mail bodies, times, SVG charts, the rows of long pages (see templating)."""
