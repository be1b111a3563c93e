"""Shared test setup: everything offline, nothing written outside tmp folders."""

import os

import pytest

# Set before any HF/W&B import: without them a Hub lookup retries for ~40 s before failing.
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "MPLBACKEND": "Agg",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_k, _v)


def pytest_configure(config):
    # the GPU suite runs in one process: workers would share the GPU, and its throughput and memory readings with it
    if "gpu" in (config.option.markexpr or "") and getattr(config.option, "dist", "no") != "no":
        config.option.dist, config.option.numprocesses = "no", 0
    # torch caps OMP_NUM_THREADS at the number of cores; the numerics tests are meant to run with exactly that
    # many threads (README: the tests), so apply it as given
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config, items):
    # the longest files first (a stable sort keeps each file's order), so that the workers start on them and the
    # quick files fill the gaps at the end, instead of one worker finishing a long file alone: a file with a test
    # that declares a longer timeout than the default (a chain of fresh processes), then files with slow tests
    longest: dict = {}
    for item in items:
        mark = item.get_closest_marker("timeout")
        longest[item.path] = max(longest.get(item.path, 0), mark.args[0] if mark and mark.args else 0,
                                 1 if item.get_closest_marker("slow") else 0)
    items.sort(key=lambda item: -longest[item.path])
    # the GPU acceptance suite runs only when a -m expression names it (python -m pytest -m gpu): the plain run and
    # the quick tier (-m "not slow") deselect it, counted as deselected in the summary
    if "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def pytest_report_header(config):
    # what the numerics ran with: the kernels' instruction set and the thread count
    import torch

    return f"torch {torch.__version__}: {torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads"


@pytest.fixture
def server():
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/helpers/openai_server.py), stopped after the test."""
    from tests.helpers.openai_server import FakeOpenAI

    srv = FakeOpenAI()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def api_key(monkeypatch):
    """OPENAI_API_KEY set to a test key (tests check it is never written to disk) for this test only."""
    from tests.helpers.generate_kit import KEY

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY
