"""Event counters shared by every process (the source of the Prometheus counters)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base


class Counter(Base):
    """How many times an event happened, per label (e.g. refused mail per reason)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), primary_key=True, default="")
    value: Mapped[int] = mapped_column(BigInteger, default=0)
