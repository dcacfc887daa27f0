"""SQLite metadata: the one source of truth for images, tags, layers and containers.

WAL mode lets readers run while one writer commits; every write transaction starts with
``BEGIN IMMEDIATE`` so two berth processes queue on the busy timeout instead of failing
with "database is locked" when a deferred read would have had to upgrade to a write.
Schema changes are append-only migrations numbered by ``PRAGMA user_version``.

On a full disk even opening the database needs a little room (the WAL and its
shared-memory index); a ``make_room`` callback (the store's reserve file, see
:mod:`berth.store.space`) is asked for it before a connection opens and before each write
transaction, and once more when SQLite still reports the disk full.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from berth.errors import is_no_space

BUSY_TIMEOUT_MS = 60_000

# Append-only: never edit a migration that has shipped; add a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE layers (
        chain_id   TEXT PRIMARY KEY,
        diff_id    TEXT NOT NULL,
        parent     TEXT REFERENCES layers(chain_id),
        link       TEXT NOT NULL UNIQUE,
        size       INTEGER NOT NULL,
        created    REAL NOT NULL
    );
    CREATE TABLE images (
        id                  TEXT PRIMARY KEY,
        manifest_digest     TEXT NOT NULL,
        manifest_media_type TEXT NOT NULL,
        created             REAL NOT NULL,
        added               REAL NOT NULL,
        size                INTEGER NOT NULL,
        labels              TEXT NOT NULL DEFAULT '{}',
        parent              TEXT,
        top_layer           TEXT REFERENCES layers(chain_id)
    );
    CREATE TABLE image_layers (
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
        blob_digest TEXT NOT NULL,
        blob_size   INTEGER NOT NULL,
        media_type  TEXT NOT NULL,
        PRIMARY KEY (image_id, idx)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE INDEX image_layers_blob ON image_layers(blob_digest);
    CREATE TABLE tags (
        name       TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        tag        TEXT NOT NULL,
        image_id   TEXT NOT NULL REFERENCES images(id),
        tagged     REAL NOT NULL
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        repository TEXT NOT NULL,
        digest     TEXT NOT NULL,
        image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (repository, digest)
    );
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    """,
    """
    CREATE TABLE containers (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        image_id     TEXT NOT NULL REFERENCES images(id),
        image_name   TEXT NOT NULL,
        created      REAL NOT NULL,
        config       TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'created',
        pid          INTEGER,
        exit_code    INTEGER,
        started_at   REAL,
        finished_at  REAL,
        oom_killed   INTEGER NOT NULL DEFAULT 0,
        restart_count INTEGER NOT NULL DEFAULT 0,
        runtime      TEXT,
        labels       TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    """
    CREATE TABLE blob_sources (
        registry   TEXT NOT NULL,
        repository TEXT NOT NULL,
        digest     TEXT NOT NULL,
        seen       REAL NOT NULL,
        PRIMARY KEY (registry, repository, digest)
    );
    CREATE INDEX blob_sources_digest ON blob_sources(registry, digest);
    """,
    # containers: conmon handle of the current run, "stopped by the user" (restart
    # policies must not undo a stop), and the last start error (inspect State.Error).
    """
    ALTER TABLE containers ADD COLUMN monitor TEXT;
    ALTER TABLE containers ADD COLUMN manual_stop INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN error TEXT NOT NULL DEFAULT ''
    """,
    # Layers pulled from a registry are verified (digest and diff ID) but unpacked on
    # first use; until then the row exists with unpacked=0 and no directory.
    """
    ALTER TABLE layers ADD COLUMN unpacked INTEGER NOT NULL DEFAULT 1
    """,
    # Networks (berth.network.service): the networks, each container's endpoint on each
    # (address held from create to rm), and the live sandbox of a running container
    # (its netns, the userland proxy's pid and the host ports it was given).
    """
    CREATE TABLE networks (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL UNIQUE,
        driver    TEXT NOT NULL,
        subnet    TEXT,
        gateway   TEXT,
        internal  INTEGER NOT NULL DEFAULT 0,
        labels    TEXT NOT NULL DEFAULT '{}',
        created   REAL NOT NULL,
        options   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE endpoints (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        network_id   TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        ip           TEXT NOT NULL,
        mac          TEXT NOT NULL,
        aliases      TEXT NOT NULL DEFAULT '[]',
        ifname       TEXT NOT NULL DEFAULT 'eth0',
        created      REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (container_id, network_id)
    );
    CREATE INDEX endpoints_network ON endpoints(network_id);
    CREATE TABLE sandboxes (
        container_id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
        netns        TEXT NOT NULL DEFAULT '',
        proxy_pid    INTEGER,
        ports        TEXT NOT NULL DEFAULT '[]'
    )
    """,
    # Build cache (berth.build.cache): step cache key -> the step's (intermediate) image;
    # rows vanish with their image. File digests by inode identity let a cached rebuild
    # skip re-reading unchanged COPY sources.
    """
    CREATE TABLE build_cache (
        key       TEXT PRIMARY KEY,
        image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        created   REAL NOT NULL,
        last_used REAL NOT NULL
    );
    CREATE INDEX build_cache_image ON build_cache(image_id);
    CREATE TABLE build_file_hashes (
        dev         INTEGER NOT NULL,
        ino         INTEGER NOT NULL,
        size        INTEGER NOT NULL,
        mtime_ns    INTEGER NOT NULL,
        ctime_ns    INTEGER NOT NULL,
        digest      TEXT NOT NULL,
        recorded_ns INTEGER NOT NULL,
        PRIMARY KEY (dev, ino)
    )
    """,
    # Volumes (berth.volumes.service) and which container mounts which volume where; the
    # foreign key to volumes makes the database refuse to drop a volume still in use.
    """
    CREATE TABLE volumes (
        name      TEXT PRIMARY KEY,
        driver    TEXT NOT NULL DEFAULT 'local',
        labels    TEXT NOT NULL DEFAULT '{}',
        options   TEXT NOT NULL DEFAULT '{}',
        created   REAL NOT NULL,
        anonymous INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE container_volumes (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        volume_name  TEXT NOT NULL REFERENCES volumes(name),
        destination  TEXT NOT NULL,
        rw           INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (container_id, destination)
    );
    CREATE INDEX container_volumes_volume ON container_volumes(volume_name)
    """,
    # Push compression (berth.registry.client.push_layers): what a stored blob compressed
    # to in a format and level, so a later push of the same layer to any registry finds it
    # by digest instead of compressing and uploading it again (Docker's "v2 metadata").
    """
    CREATE TABLE compressed_blobs (
        source  TEXT NOT NULL,
        format  TEXT NOT NULL,
        level   INTEGER NOT NULL,
        digest  TEXT NOT NULL,
        size    INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (source, format, level)
    );
    CREATE INDEX compressed_blobs_digest ON compressed_blobs(digest)
    """,
    # Health of a container with a health check (berth.container.health): Docker's
    # State.Health as JSON (Status, FailingStreak, Log), written by every probe so the CLI
    # and the API service read the same state.
    """
    ALTER TABLE containers ADD COLUMN health TEXT
    """,
    # Storage accounting and one copy per layer (berth.images.onecopy, berth.images.usage):
    # the size of a layer's tar-split record (NULL: its tar blob is kept instead), each
    # container's writable layer size as of its last exit, when each image was last used
    # (GC's LRU order), and store-wide facts (layer format, last GC).
    # ``blob_kept`` is the bytes of the blob a layer keeps beside (or instead of) its tree;
    # ``usage_totals`` is kept by triggers so the budget check reads one row, not 5,000.
    # layers(parent) is indexed: deleting a layer checks that no child row names it.
    """
    ALTER TABLE layers ADD COLUMN split_size INTEGER;
    ALTER TABLE layers ADD COLUMN blob_kept INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN size_rw INTEGER;
    ALTER TABLE images ADD COLUMN last_used REAL;
    CREATE INDEX layers_parent ON layers(parent);
    CREATE TABLE store_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    UPDATE layers SET blob_kept = COALESCE((SELECT MAX(blob_size) FROM image_layers il
        WHERE il.chain_id = layers.chain_id), 0);
    CREATE TABLE usage_totals (
        name  TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL
    );
    INSERT INTO usage_totals SELECT 'layers', COALESCE(SUM((CASE WHEN unpacked THEN size
        ELSE 0 END) + COALESCE(split_size, 0) + blob_kept), 0) FROM layers;
    INSERT INTO usage_totals SELECT 'containers', COALESCE(SUM(size_rw), 0) FROM containers;
    CREATE TRIGGER layers_use_ins AFTER INSERT ON layers BEGIN
        UPDATE usage_totals SET bytes = bytes + (CASE WHEN NEW.unpacked THEN NEW.size ELSE 0
            END) + COALESCE(NEW.split_size, 0) + NEW.blob_kept WHERE name = 'layers'; END;
    CREATE TRIGGER layers_use_del AFTER DELETE ON layers BEGIN
        UPDATE usage_totals SET bytes = bytes - (CASE WHEN OLD.unpacked THEN OLD.size ELSE 0
            END) - COALESCE(OLD.split_size, 0) - OLD.blob_kept WHERE name = 'layers'; END;
    CREATE TRIGGER layers_use_upd AFTER UPDATE OF size, unpacked, split_size, blob_kept
        ON layers BEGIN
        UPDATE usage_totals SET bytes = bytes + (CASE WHEN NEW.unpacked THEN NEW.size ELSE 0
            END) + COALESCE(NEW.split_size, 0) + NEW.blob_kept - (CASE WHEN OLD.unpacked
            THEN OLD.size ELSE 0 END) - COALESCE(OLD.split_size, 0) - OLD.blob_kept
            WHERE name = 'layers'; END;
    CREATE TRIGGER containers_use_ins AFTER INSERT ON containers BEGIN
        UPDATE usage_totals SET bytes = bytes + COALESCE(NEW.size_rw, 0)
            WHERE name = 'containers'; END;
    CREATE TRIGGER containers_use_del AFTER DELETE ON containers BEGIN
        UPDATE usage_totals SET bytes = bytes - COALESCE(OLD.size_rw, 0)
            WHERE name = 'containers'; END;
    CREATE TRIGGER containers_use_upd AFTER UPDATE OF size_rw ON containers BEGIN
        UPDATE usage_totals SET bytes = bytes + COALESCE(NEW.size_rw, 0)
            - COALESCE(OLD.size_rw, 0) WHERE name = 'containers'; END
    """,
]


def _set_wal(c: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried: while another process switches a brand-new
    database to WAL, SQLite answers "database is locked" at once, without waiting on the
    busy timeout (several first commands on a fresh store race here)."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            c.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Database:
    """A connection per object (and per thread); cheap to open, safe across processes."""

    def __init__(self, path: str, make_room: Callable[[bool], bool] | None = None,
                 take_back: Callable[[], None] | None = None) -> None:
        """``make_room(force)`` lends emergency space when the disk is low (always when
        ``force``: SQLite already said it is full) and says whether it lent any;
        ``take_back()`` re-takes what the open or the transaction did not use."""
        self.path = path
        self._make_room = make_room or (lambda force: False)
        self._take_back = take_back or (lambda: None)
        self._local = threading.local()
        self._migrate()

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            self._make_room(False)
            try:
                c = self._open()
            except sqlite3.OperationalError as e:
                if not (is_no_space(e) and self._make_room(True)):
                    raise
                c = self._open()
            finally:
                self._take_back()
            self._local.conn = c
        return c

    def _open(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                            isolation_level=None, check_same_thread=False)
        try:
            c.row_factory = sqlite3.Row
            c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _set_wal(c)
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            # the first read maps the WAL index: on a full disk it fails here, not later
            c.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except BaseException:
            c.close()
            raise
        return c

    def _migrate(self) -> None:
        c = self.conn
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.tx() as t:
            version = t.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, len(MIGRATIONS)):
                t.executescript_in_tx(MIGRATIONS[i])
            t.execute(f"PRAGMA user_version={len(MIGRATIONS)}")

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        c = self.conn
        self._make_room(False)
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(c)
            except BaseException:
                if c.in_transaction:  # SQLite may have rolled back already (full disk)
                    c.execute("ROLLBACK")
                raise
            self._commit(c)
        finally:
            self._take_back()

    def _commit(self, c: sqlite3.Connection) -> None:
        try:
            c.execute("COMMIT")
        except sqlite3.OperationalError as e:
            # After SQLITE_FULL the transaction stays open and COMMIT may be retried.
            if c.in_transaction and is_no_space(e) and self._make_room(True):
                try:
                    c.execute("COMMIT")
                    return
                except sqlite3.OperationalError:
                    pass
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
        return row

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None


class Tx:
    """The handle inside :meth:`Database.tx`; thin so callers write plain SQL."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        return self._c.execute(sql, args)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> sqlite3.Cursor:
        return self._c.executemany(sql, rows)

    def executescript_in_tx(self, script: str) -> None:
        # executescript() would COMMIT first; run statements one by one inside the tx
        # (a trigger body holds ';' too: a statement ends where SQLite says it is complete).
        buf = ""
        for part in script.split(";"):
            buf += part + ";"
            if sqlite3.complete_statement(buf):
                if buf.strip().strip(";").strip():
                    self._c.execute(buf)
                buf = ""

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return self._c.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._c.execute(sql, args).fetchone()
        return row
