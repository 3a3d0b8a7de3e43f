"""What calling a pg_catalog function does, without asking the server.

Three sources, in order:

1. ``SIDE_EFFECTS``: functions a hot standby rejects (sequences, xid and WAL functions, large
   object writers, ``pg_notify``...) or whose effect must stay on the primary (advisory locks,
   ``set_config``, ``currval``). Some are STABLE in ``pg_proc`` (``txid_current``), which is why
   volatility alone is not enough.
2. ``HARMLESS_VOLATILE``: VOLATILE functions that a standby runs and that leave nothing behind
   (``random()``, ``clock_timestamp()``, size and replay-status functions...).
3. The generated name lists of ``_pg_functions``: IMMUTABLE / STABLE → READ; any other VOLATILE
   built-in → WRITE.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from router.core._pg_functions import NON_VOLATILE, VOLATILE
from router.core._types import Effect, Route

__all__ = ["HARMLESS_VOLATILE", "SIDE_EFFECTS", "FunctionRule", "builtin_rule", "set_config_rule"]

_NONE: Final[frozenset[Effect]] = frozenset()
_PIN: Final = frozenset({Effect.PIN})


class FunctionRule(NamedTuple):
    """The route a call forces, the effects it has, and why."""

    route: Route
    effects: frozenset[Effect]
    reason: str


def _write(reason: str, effects: frozenset[Effect] = _NONE) -> FunctionRule:
    return FunctionRule(Route.WRITE, effects, reason)


def _table() -> dict[str, FunctionRule]:
    table: dict[str, FunctionRule] = {}

    def add(names: str, rule: FunctionRule) -> None:
        for name in names.split():
            table[name] = rule

    add("nextval setval", _write("sequence function {name}() writes"))
    add("currval lastval", _write("{name}() reads the session's sequence state on the primary"))
    add(
        "pg_advisory_lock pg_advisory_lock_shared pg_try_advisory_lock"
        " pg_try_advisory_lock_shared pg_advisory_unlock pg_advisory_unlock_shared"
        " pg_advisory_unlock_all",
        _write("session advisory lock {name}()", _PIN),
    )
    add(
        "pg_advisory_xact_lock pg_advisory_xact_lock_shared pg_try_advisory_xact_lock"
        " pg_try_advisory_xact_lock_shared",
        _write("advisory lock {name}() must be taken on the primary"),
    )
    add(
        "txid_current pg_current_xact_id txid_current_if_assigned pg_current_xact_id_if_assigned",
        _write("{name}() assigns or reports the primary's transaction id"),
    )
    add(
        "pg_current_wal_lsn pg_current_wal_insert_lsn pg_current_wal_flush_lsn pg_walfile_name"
        " pg_walfile_name_offset pg_switch_wal pg_create_restore_point pg_backup_start"
        " pg_backup_stop pg_start_backup pg_stop_backup pg_logical_emit_message"
        " pg_log_standby_snapshot",
        _write("WAL function {name}() runs on the primary only"),
    )
    add("pg_notify", _write("pg_notify() sends a notification"))
    add(
        "pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile"
        " pg_rotate_logfile_old pg_promote pg_wal_replay_pause pg_wal_replay_resume"
        " pg_log_backend_memory_contexts pg_import_system_collations pg_nextoid"
        " pg_stop_making_pinned_objects pg_export_snapshot",
        _write("server function {name}() acts on the primary"),
    )
    add(
        "pg_stat_reset pg_stat_reset_shared pg_stat_reset_slru pg_stat_reset_replication_slot"
        " pg_stat_reset_single_table_counters pg_stat_reset_single_function_counters"
        " pg_stat_reset_subscription_stats pg_stat_statements_reset",
        _write("{name}() resets statistics"),
    )
    add(
        "lo_creat lo_create lo_import lo_export lo_unlink lo_put lo_from_bytea lowrite"
        " lo_truncate lo_truncate64 lo_open loread lo_lseek lo_lseek64 lo_tell lo_tell64"
        " lo_close",
        _write("large object function {name}()"),
    )
    add(
        "query_to_xml query_to_xml_and_xmlschema query_to_xmlschema ts_stat ts_rewrite",
        _write("{name}() runs SQL given as text"),
    )
    add(
        "setseed",
        _write("setseed() changes the session's random seed", frozenset({Effect.SET, Effect.PIN})),
    )
    # Not pg_catalog, but common extensions whose effects outlive the call or reach elsewhere.
    add(
        "dblink_exec dblink dblink_send_query dblink_open dblink_fetch dblink_close"
        " dblink_get_result dblink_disconnect",
        _write("dblink function {name}() runs remote SQL"),
    )
    add(
        "dblink_connect dblink_connect_u",
        _write("{name}() keeps a connection in the session", _PIN),
    )
    add(
        "pg_create_physical_replication_slot pg_create_logical_replication_slot"
        " pg_drop_replication_slot pg_copy_physical_replication_slot"
        " pg_copy_logical_replication_slot pg_replication_slot_advance"
        " pg_logical_slot_get_changes pg_logical_slot_get_binary_changes"
        " pg_logical_slot_peek_changes pg_logical_slot_peek_binary_changes",
        _write("replication slot function {name}()"),
    )
    for name in VOLATILE:
        if name.startswith("pg_replication_origin_"):
            table[name] = _write("replication origin function {name}()")
    return table


SIDE_EFFECTS: Final[dict[str, FunctionRule]] = _table()

_HARMLESS_VOLATILE = """
random clock_timestamp timeofday gen_random_uuid pg_sleep pg_sleep_for pg_sleep_until
pg_is_in_recovery pg_last_wal_receive_lsn pg_last_wal_replay_lsn pg_last_xact_replay_timestamp
pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_relation_size pg_table_size
pg_total_relation_size pg_indexes_size pg_database_size pg_tablespace_size pg_lock_status
pg_blocking_pids pg_safe_snapshot_blocking_pids pg_isolation_test_session_is_blocked
pg_stat_clear_snapshot pg_stat_have_stats pg_stat_force_next_flush pg_stat_get_recovery_prefetch
pg_jit_available pg_collation_actual_version pg_database_collation_actual_version
pg_partition_tree pg_partition_ancestors pg_get_multixact_members pg_xact_commit_timestamp
pg_xact_commit_timestamp_origin pg_last_committed_xact pg_xact_status txid_status current_query
pg_sequence_last_value lo_get cursor_to_xml cursor_to_xmlschema pg_prepared_xact
pg_get_wal_resource_managers pg_get_backend_memory_contexts pg_get_shmem_allocations
pg_control_checkpoint pg_control_init pg_control_recovery pg_control_system pg_ls_dir
pg_ls_logdir pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir pg_ls_logicalmapdir
pg_ls_logicalsnapdir pg_ls_replslotdir pg_read_file pg_read_file_old pg_read_binary_file
pg_stat_file pg_current_logfile pg_hba_file_rules pg_ident_file_mappings
pg_show_all_file_settings pg_notification_queue_usage pg_show_replication_origin_status
bernoulli system
"""

HARMLESS_VOLATILE: Final[frozenset[str]] = frozenset(_HARMLESS_VOLATILE.split()) | {
    name for name in VOLATILE if name.startswith("pg_stat_get_xact_")
}

_SET_CONFIG_UNSAFE: Final = frozenset({"transaction_read_only", "transaction_isolation"})


def _const(node: Any) -> Any:
    """The Python value of an ``A_Const`` node from pglast's JSON, or ``None``."""
    if not isinstance(node, dict):
        return None
    const = node.get("A_Const")
    if not isinstance(const, dict):
        return None
    if "boolval" in const:
        return bool(const["boolval"].get("boolval", False))
    if "sval" in const:
        return const["sval"].get("sval", "")
    return None


def set_config_rule(args: list[Any] | None) -> FunctionRule:
    """``set_config(name, value, is_local)``: local with a constant, harmless name → READ."""
    args = args or []
    if len(args) == 3 and _const(args[2]) is True:
        name = _const(args[0])
        if isinstance(name, str) and name.lower() not in _SET_CONFIG_UNSAFE:
            return FunctionRule(
                Route.READ, frozenset({Effect.SET_LOCAL}), "set_config(..., true) is local"
            )
        return _write("set_config() of a transaction characteristic", frozenset({Effect.SET_LOCAL}))
    return _write("set_config() changes a session setting", frozenset({Effect.SET, Effect.PIN}))


def builtin_rule(name: str, args: list[Any] | None) -> FunctionRule | None:
    """The rule for pg_catalog function ``name``, or ``None`` if pg_catalog has no such name."""
    if name == "set_config":
        return set_config_rule(args)
    rule = SIDE_EFFECTS.get(name)
    if rule is not None:
        return rule._replace(reason=rule.reason.format(name=name))
    if name in NON_VOLATILE or name in HARMLESS_VOLATILE:
        return FunctionRule(Route.READ, _NONE, f"built-in {name}() only reads")
    if name in VOLATILE:
        return _write(f"volatile built-in function {name}()")
    return None
