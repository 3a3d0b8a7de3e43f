"""The marketplace's tables, and a schema + seed step (run once, on the primary).

Users browse projects (a list, a detail page, rankings), create projects, and read their
notifications (an unread count, mark as read); a login creates a session row that every
request validates. Reads that must see the user's own writes — the new project, the unread
count after mark-as-read, the session right after login — are exactly what used to be kept on
the primary; with ``router.web`` they go to replicas that have the write.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from router import Router, RouterConfig


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer, default=0, index=True)


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(String(200))
    read: Mapped[bool] = mapped_column(Boolean, default=False)


def create_schema(
    config: RouterConfig, *, users: int = 200, projects: int = 2000, notifications: int = 400
) -> None:
    """Create and seed the tables (through the router: DDL goes to the primary) unless they
    exist: *users* users, *projects* projects, *notifications* unread notifications per user."""
    dialect = postgresql.dialect()
    with Router(config) as db, db.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(7160016)")  # one seeder at a time
        if tx.fetchval("SELECT to_regclass('public.notifications') IS NOT NULL"):
            return
        for table in Base.metadata.sorted_tables:
            tx.execute(str(CreateTable(table).compile(dialect=dialect)))
            for index in table.indexes:
                tx.execute(str(CreateIndex(index).compile(dialect=dialect)))
        tx.execute(
            "INSERT INTO users (id, name) SELECT g, 'user ' || g FROM generate_series(1, %s) g",
            (users,),
        )
        tx.execute(
            "INSERT INTO projects (owner_id, title, score)"
            " SELECT 1 + g %% %s, 'project ' || g, (g * 7919) %% 1000"
            " FROM generate_series(1, %s) g",
            (users, projects),
        )
        tx.execute(
            "INSERT INTO notifications (user_id, body, read)"
            " SELECT u, 'notification ' || k, false"
            " FROM generate_series(1, %s) u, generate_series(1, %s) k ORDER BY u, k",
            (users, notifications),
        )
