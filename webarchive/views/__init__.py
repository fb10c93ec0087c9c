"""The web archive's pages, one blueprint per page family; create_app registers each by name.

A module here holds its blueprint (`bp`), its views and the few template globals only its own
templates need; the queries are in webarchive.reading, the HTML in templates/<blueprint>/ and
webarchive.templating. A family too big for one module is a package (pages/): its modules
register on the one `bp` of its blueprint.py, which the package hands on.
"""
