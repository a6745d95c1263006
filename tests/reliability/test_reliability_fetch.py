"""Fetches under injected faults: nothing lost, nothing that looks complete and is not.

For each archive, 100 files are fetched while about 20% of the data requests
fail (error statuses with and without ``Retry-After``, bodies cut mid-way,
``Content-Length`` larger than the body), with retries switched off so that
failures reach ``Results.errors``. The results are passed back to
``Fido.fetch`` once with the faults still on and once after they stop. Every file is then either complete and
byte-identical to the server's, or listed as an error; ``Fido.fetch(results)``
completes the rest without asking again for any complete file (checked on
the server's per-path GET counters). The random decisions come from a fixed
seed, so every run meets the same faults.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.eso  # noqa: F401
import sunpy_archives.imap  # noqa: F401
import sunpy_archives.jsoc  # noqa: F401
import sunpy_archives.spice  # noqa: F401
from sunpy_archives.core.download import marker_for
from sunpy_archives.testing.eso import EsoArchiveData, start_eso_server

N_FILES = 100
DATA_FAULTS = {
    "seed": 20,
    "class_fail_rates": {"data": 0.14},
    "statuses": (500, 502, 503, 429),
    "retry_after": 0.1,
    "retry_after_statuses": (503, 502),
    "cut_rate": 0.03,
    "overlong_rate": 0.03,
    "classes": frozenset({"data"}),
}


# --- one adapter per archive: search 100 rows, where each lands, the server's bytes ------------

class Spice:
    name = "spice"

    def __init__(self, server, tmp_path):
        self.server, self.tmp = server, tmp_path
        self.template = str(tmp_path / "{file_path}" / "{file}")

    def search(self):
        table = Fido.search(a.spice.Release("latest"), a.Level(2))[0][:N_FILES]
        return table

    def dest(self, row):
        return self.tmp / row["File Path"] / row["Filename"]

    def expected(self, row):
        return self.server.data.fits_bytes(row["Filename"])

    def token(self, row):
        return row["Filename"]

    def fetch(self, what):
        return Fido.fetch(what, path=self.template, progress=False)


class Imap(Spice):
    name = "imap"

    def __init__(self, server, tmp_path):
        super().__init__(server, tmp_path)
        self.template = f"{tmp_path}/{{sdc_dir}}/{{file}}"

    def search(self):
        return Fido.search(a.Instrument("mag"), a.imap.Version("latest"),
                           a.Time("2025-01-01", "2025-03-01"))[0][:N_FILES]

    def dest(self, row):
        return self.tmp / row["SDC Dir"] / row["Filename"]

    def expected(self, row):
        return self.server.data.file_bytes(f"{row['SDC Dir']}/{row['Filename']}")


class Jsoc(Spice):
    name = "jsoc"

    def __init__(self, server, tmp_path):
        super().__init__(server, tmp_path)
        self.template = str(tmp_path / "{file}")
        self.reference: dict[str, bytes] = {}

    def search(self):
        table = Fido.search(a.Time("2014-01-01T00:00", "2014-01-02T00:00"),
                            a.drms.Series("hmi.m_720s"))[0][:N_FILES]
        # The server makes export files on request; take its bytes with faults off.
        ref = self.tmp.parent / f"{self.tmp.name}-reference"
        files = Fido.fetch(table, path=ref, progress=False, poll_first=0.05)
        assert not files.errors and len(files) == N_FILES
        self.reference = {Path(f).name: Path(f).read_bytes() for f in files}
        return table

    def _name(self, row):
        return "hmi.m_720s." + row["T_REC"].strftime("%Y%m%d_%H%M%S") + "_TAI.3.magnetogram.fits"

    def dest(self, row):
        return self.tmp / self._name(row)

    def expected(self, row):
        return self.reference[self._name(row)]

    def token(self, row):
        return self._name(row)

    def fetch(self, what):
        return Fido.fetch(what, path=self.template, progress=False, poll_first=0.05)


class Eso(Spice):
    name = "eso"

    def __init__(self, server, tmp_path):
        super().__init__(server, tmp_path)
        self.template = str(tmp_path / "{file}")

    def search(self):
        table = Fido.search(a.eso.Collection("HARPS"))[0][:N_FILES]
        assert len(table) == N_FILES
        return table

    def dest(self, row):
        found = list(self.tmp.glob(f"{row['Archive ID']}.*"))
        found = [p for p in found if not p.name.endswith(".sunpy-archives-partial")]
        return found[0] if found else self.tmp / f"{row['Archive ID']}.missing"

    def expected(self, row):
        return self.server.data.file_bytes(row["Archive ID"])

    def token(self, row):
        return f"/file/{row['Archive ID']}"


@pytest.fixture(scope="module")
def eso_many():
    """An ESO server with 70 HARPS products (about 105 files of 1.5 kB)."""
    server = start_eso_server(EsoArchiveData.generate({"HARPS": 70}, file_size=1500))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def archive(request, tmp_path, monkeypatch):
    name = request.param
    if name == "eso":
        server = request.getfixturevalue("eso_many")
        for key, value in server.environment().items():
            monkeypatch.setenv(key, value)
        adapter = Eso(server, tmp_path / "out")
    else:
        server = request.getfixturevalue(f"{name}_env")
        request.getfixturevalue(f"{name}_faults")  # reset before and after
        adapter = {"spice": Spice, "imap": Imap, "jsoc": Jsoc}[name](server, tmp_path / "out")
        if name == "jsoc":
            server.state.image_shape = (4, 4)  # small files
    server.faults.reset()
    yield adapter
    server.faults.reset()


def _gets(server, token):
    return sum(n for key, n in server.faults.get_hits.items() if token in key)


def _check_state(adapter, table, results, *, retried=False):
    """Every row: complete and identical, or listed as an error. Returns (complete, failed).

    Files written by parfive's own retry (``Fido.fetch(results)``) may still carry
    their in-flight marker: nothing of ours watched that download, so they are
    trusted only once a later fetch has verified them.
    """
    got = {os.path.abspath(p) for p in results}
    complete, pending = [], []
    for row in table:
        dest = adapter.dest(row)
        if str(dest.resolve()) in got:
            assert dest.read_bytes() == adapter.expected(row), f"{dest} differs from the server's"
            assert retried or not marker_for(dest).exists()
            complete.append(row)
        else:
            pending.append(row)
            # No file that looks complete and is not.
            if dest.exists() and not marker_for(dest).exists():
                assert dest.read_bytes() == adapter.expected(row), f"{dest} looks complete"
    assert len(pending) == len(results.errors), "every missing file is listed in Results.errors"
    return complete, pending


@pytest.mark.parametrize("archive", ["spice", "imap", "jsoc", "eso"], indirect=True)
def test_fetch_100_files_with_20_percent_data_faults(archive, monkeypatch, reliability_stats):
    table = archive.search()
    assert len(table) == N_FILES
    faults = archive.server.faults
    faults.reset()
    faults.configure(**DATA_FAULTS)
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")  # failures must reach Results.errors

    results = archive.fetch(table)
    complete, pending = _check_state(archive, table, results)
    assert pending, "the faults were not felt (no file failed)"
    assert complete, "nothing got through"
    first_faults = faults.faults_injected
    assert first_faults >= 10

    # The user passes the results back while the network still fails (parfive's
    # retry: no retries of its own), then once more after it recovers. Neither
    # asks again for a file that is complete.
    for still_failing in (True, False):
        if not still_failing:
            injected = faults.faults_injected
            faults.reset()
        before = {archive.token(row): _gets(archive.server, archive.token(row)) for row in complete}
        results = Fido.fetch(results)
        after = {token: _gets(archive.server, token) for token in before}
        assert after == before, "a complete file was fetched again"
        complete, pending = _check_state(archive, table, results, retried=True)
    assert not results.errors and len(complete) == N_FILES

    # A fetch of ours verifies what parfive's retry wrote: afterwards every file is
    # identical and unmarked.
    final = archive.fetch(table)
    assert not final.errors
    for row in table:
        dest = archive.dest(row)
        assert dest.read_bytes() == archive.expected(row) and not marker_for(dest).exists()

    reliability_stats["faults_injected"] += injected
    reliability_stats["files_fetched"] += N_FILES
    reliability_stats[f"files_fetched_{archive.name}"] += N_FILES
    reliability_stats["files_lost"] += N_FILES - len(complete)
