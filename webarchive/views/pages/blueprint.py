"""The blueprint of the reading pages: every endpoint of theirs is named pages.<view>."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__)
