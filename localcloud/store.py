"""All local-cloud state: one SQLite database and a blob directory under the data dir.

Every call is one short transaction behind a lock, so the store may be used
from the event loop and from worker threads alike. Bytes never enter the
database: images and objects are files under ``blobs/``, written to ``tmp/``
first and renamed into place, so a crash leaves no half object behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    cloud TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (cloud, kind, id));
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, cloud TEXT NOT NULL, expires REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS containers (
    cloud TEXT NOT NULL, account TEXT NOT NULL, name TEXT NOT NULL, meta TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (cloud, account, name));
CREATE TABLE IF NOT EXISTS objects (
    cloud TEXT NOT NULL, account TEXT NOT NULL, container TEXT NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL,
    last_modified REAL NOT NULL, delete_at REAL, meta TEXT NOT NULL,
    manifest TEXT, manifest_data TEXT, blob TEXT,
    PRIMARY KEY (cloud, account, container, name));
"""

OBJECT_COLUMNS = ("cloud", "account", "container", "name", "size", "etag", "content_type",
                  "last_modified", "delete_at", "meta", "manifest", "manifest_data", "blob")


class Store:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        for d in (self.root, self.blob_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "localcloud.sqlite3", check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- meta: small settings that must survive a restart (ports, credentials)
    def get_meta(self, key: str) -> Any:
        rows = self._run("SELECT value FROM meta WHERE key=?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # --- records: images, tasks and whatever else a service keeps as a document
    def put_record(self, cloud: str, kind: str, doc: dict, created: float) -> None:
        self._run("INSERT INTO records VALUES (?, ?, ?, ?, ?) ON CONFLICT (cloud, kind, id) "
                  "DO UPDATE SET doc=excluded.doc",
                  (cloud, kind, doc["id"], json.dumps(doc), created))

    def get_record(self, cloud: str, kind: str, rid: str) -> dict | None:
        rows = self._run("SELECT doc FROM records WHERE cloud=? AND kind=? AND id=?",
                         (cloud, kind, rid))
        return json.loads(rows[0]["doc"]) if rows else None

    def list_records(self, cloud: str, kind: str) -> list[dict]:
        rows = self._run("SELECT doc FROM records WHERE cloud=? AND kind=? ORDER BY created, id",
                         (cloud, kind))
        return [json.loads(r["doc"]) for r in rows]

    def delete_record(self, cloud: str, kind: str, rid: str) -> None:
        self._run("DELETE FROM records WHERE cloud=? AND kind=? AND id=?", (cloud, kind, rid))

    # --- tokens
    def put_token(self, token_id: str, cloud: str, expires: float, doc: dict) -> None:
        self._run("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
                  (token_id, cloud, expires, json.dumps(doc)))

    def get_token(self, token_id: str) -> tuple[str, float, dict] | None:
        rows = self._run("SELECT cloud, expires, doc FROM tokens WHERE id=?", (token_id,))
        if not rows:
            return None
        return rows[0]["cloud"], rows[0]["expires"], json.loads(rows[0]["doc"])

    def expire_token(self, token_id: str, when: float) -> None:
        self._run("UPDATE tokens SET expires=? WHERE id=?", (when, token_id))

    def purge_tokens(self, before: float) -> None:
        self._run("DELETE FROM tokens WHERE expires < ?", (before,))

    # --- containers
    def get_container(self, cloud: str, account: str, name: str) -> dict | None:
        rows = self._run("SELECT * FROM containers WHERE cloud=? AND account=? AND name=?",
                         (cloud, account, name))
        return _container(rows[0]) if rows else None

    def put_container(self, cloud: str, account: str, name: str, meta: dict,
                      created: float) -> None:
        self._run("INSERT INTO containers VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                  "(cloud, account, name) DO UPDATE SET meta=excluded.meta",
                  (cloud, account, name, json.dumps(meta), created))

    def delete_container(self, cloud: str, account: str, name: str) -> None:
        self._run("DELETE FROM containers WHERE cloud=? AND account=? AND name=?",
                  (cloud, account, name))

    def list_containers(self, cloud: str, account: str | None = None) -> list[dict]:
        sql = "SELECT * FROM containers WHERE cloud=?"
        args: tuple = (cloud,)
        if account is not None:
            sql, args = sql + " AND account=?", (cloud, account)
        return [_container(r) for r in self._run(sql + " ORDER BY account, name", args)]

    def container_usage(self, cloud: str, account: str,
                        container: str | None = None) -> tuple[int, int]:
        """(object count, bytes used) of one container, or of the whole account."""
        sql = "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects WHERE cloud=? AND account=?"
        args: tuple = (cloud, account)
        if container is not None:
            sql, args = sql + " AND container=?", (*args, container)
        count, used = self._run(sql, args)[0]
        return count, used

    # --- objects
    def get_object(self, cloud: str, account: str, container: str, name: str) -> dict | None:
        rows = self._run("SELECT * FROM objects WHERE cloud=? AND account=? AND container=? "
                         "AND name=?", (cloud, account, container, name))
        return _object(rows[0]) if rows else None

    def put_object(self, obj: dict) -> dict | None:
        """Insert or replace an object row; returns the row it replaced, if any."""
        row = dict(obj, meta=json.dumps(obj["meta"]),
                   manifest_data=None if obj.get("manifest_data") is None
                   else json.dumps(obj["manifest_data"]))
        with self._lock:
            old = self.get_object(obj["cloud"], obj["account"], obj["container"], obj["name"])
            self._run(f"INSERT OR REPLACE INTO objects ({', '.join(OBJECT_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(OBJECT_COLUMNS))})",
                      tuple(row.get(c) for c in OBJECT_COLUMNS))
        return old

    def update_object_meta(self, obj: dict) -> None:
        self._run("UPDATE objects SET meta=?, delete_at=?, content_type=? WHERE cloud=? AND "
                  "account=? AND container=? AND name=?",
                  (json.dumps(obj["meta"]), obj["delete_at"], obj["content_type"], obj["cloud"],
                   obj["account"], obj["container"], obj["name"]))

    def delete_object(self, obj: dict) -> None:
        self._run("DELETE FROM objects WHERE cloud=? AND account=? AND container=? AND name=?",
                  (obj["cloud"], obj["account"], obj["container"], obj["name"]))
        self.remove_blob(obj.get("blob"))

    def list_objects(self, cloud: str, account: str | None = None,
                     container: str | None = None, prefix: str = "",
                     marker: str = "") -> list[dict]:
        sql = "SELECT * FROM objects WHERE cloud=?"
        args: list = [cloud]
        for column, value in (("account", account), ("container", container)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        if prefix:
            sql += " AND substr(name, 1, ?) = ?"
            args += [len(prefix), prefix]
        if marker:
            sql += " AND name > ?"
            args.append(marker)
        return [_object(r) for r in self._run(sql + " ORDER BY account, container, name",
                                              tuple(args))]

    def expired_objects(self, now: float) -> list[dict]:
        rows = self._run("SELECT * FROM objects WHERE delete_at IS NOT NULL AND delete_at <= ?",
                         (now,))
        return [_object(r) for r in rows]

    # --- blobs
    def tmp_path(self) -> Path:
        return self.tmp_dir / uuid.uuid4().hex

    def blob_path(self, name: str) -> Path:
        return self.blob_dir / name

    def commit_blob(self, tmp: Path) -> str:
        """Move a finished tmp file into the blob directory; returns its blob name."""
        name = uuid.uuid4().hex
        os.replace(tmp, self.blob_dir / name)
        return name

    def remove_blob(self, name: str | None) -> None:
        if name:
            (self.blob_dir / name).unlink(missing_ok=True)


def _container(row: sqlite3.Row) -> dict:
    return {"cloud": row["cloud"], "account": row["account"], "name": row["name"],
            "meta": json.loads(row["meta"]), "created": row["created"]}


def _object(row: sqlite3.Row) -> dict:
    obj = {c: row[c] for c in OBJECT_COLUMNS}
    obj["meta"] = json.loads(obj["meta"])
    if obj["manifest_data"] is not None:
        obj["manifest_data"] = json.loads(obj["manifest_data"])
    return obj
