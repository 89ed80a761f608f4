"""The demo issuer's key file when several workers start at once: one key wins, all read it whole."""
from __future__ import annotations

import multiprocessing
import os
import time

from cryptography.hazmat.primitives import serialization

from ehr.security.issuer import load_or_create_key
from ehr.settings import Settings


def _start_worker(data_dir: str, start_at: float) -> str:
    time.sleep(max(0.0, start_at - time.time()))  # every process reaches the file at once
    return load_or_create_key(Settings(_env_file=None, data_dir=data_dir))


def test_workers_starting_together_share_one_complete_key(tmp_path):
    processes = 6
    start_at = time.time() + 1.5  # after every process has imported the app
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        keys = pool.starmap(_start_worker, [(str(tmp_path), start_at)] * processes)
    assert len(set(keys)) == 1
    serialization.load_pem_private_key(keys[0].encode(), password=None)  # whole, not half-written
    key_file = tmp_path / "dev-issuer-key.pem"
    assert key_file.read_text() == keys[0]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["dev-issuer-key.pem"]  # no temporary file left behind


def test_a_present_key_is_kept(tmp_path):
    first = load_or_create_key(Settings(_env_file=None, data_dir=tmp_path))
    assert load_or_create_key(Settings(_env_file=None, data_dir=tmp_path)) == first
