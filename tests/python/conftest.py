"""Shared pytest fixtures for Frugal's Python tests: the frugal binary, tools on sys.path, torch threads."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS_DIR = os.path.join(REPO_ROOT, 'tools')
if TOOLS_DIR not in sys.path:
    sys.path.insert(0, TOOLS_DIR)

try:
    import torch
    # The machine is shared by parallel builds; one thread keeps the reference deterministic.
    torch.set_num_threads(1)
except ImportError:  # tests that need torch import it themselves and fail loudly
    pass


@pytest.fixture(scope='session')
def frugal_bin():
    """Path of the frugal executable from $FRUGAL_BIN; skips the test when it is not set."""
    path = os.environ.get('FRUGAL_BIN')
    if not path:
        pytest.skip('FRUGAL_BIN is not set (scripts/test.sh sets it to build/frugal)')
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(f'FRUGAL_BIN={path} is not an executable file')
    return path


@pytest.fixture(scope='session')
def session_tmp(tmp_path_factory):
    """A temporary directory shared by every test of the session (model files are cached here)."""
    return tmp_path_factory.mktemp('frugal')


@pytest.fixture
def work_dir(tmp_path):
    """A fresh temporary directory for one test."""
    return tmp_path
