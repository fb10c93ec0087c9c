"""Reading pages: the lists, a list's threads, a thread, a message, an author, a month.

blueprint.py  the one "pages" blueprint that every page below is registered on
lists.py      the pages that list: the lists, a list's threads, its months, a month, an author
threads.py    a thread (as a tree or flat) and one message of it
posts.py      what those two pages share: their posts as HTML, the posts' tops cached
"""

from __future__ import annotations

from webarchive.views.pages import lists, threads  # importing them registers their routes on bp
from webarchive.views.pages.blueprint import bp

__all__ = ["bp", "lists", "threads"]
