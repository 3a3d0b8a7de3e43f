"""The async shell over asyncpg: pools per node, the monitor task, :class:`AsyncRouter`."""
