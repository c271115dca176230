"""`launch.py pull` and `--hf` against a Hugging Face-compatible hub on loopback
(tests/fixtures/hf_hub.py) serving the tiny Llama 4 GGUF + mmproj, a split GGUF in a
subfolder, a repo that serves corrupted bytes, a gated repo and a slow one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.split_gguf import write_tiny_llama4_split

TINY = "ggml-org/tiny-llama4-GGUF"
SPLIT = "unsloth/tiny-llama4-split-GGUF"
# huggingface_hub writes what arrives in 10 MB chunks: the slow file is a few of them.
SLOW_SIZE, SLOW_BPS, CHUNK = 24 * 2**20, 4 * 2**20, 10 * 2**20


@pytest.fixture(scope="module")
def hub(tiny_llama4, tmp_path_factory):
    model, mmproj = tiny_llama4
    parts = write_tiny_llama4_split(tmp_path_factory.mktemp("split"))
    big = tmp_path_factory.mktemp("slow") / "slow.gguf"
    big.write_bytes(os.urandom(SLOW_SIZE))
    # The CDN finds blobs by sha256: the corrupt and the gated repos get bytes of their own.
    corrupt, gated = big.with_name("corrupt.gguf"), big.with_name("gated.gguf")
    corrupt.write_bytes(os.urandom(2 * 2**20))
    corrupt.with_name("norange.gguf").write_bytes(os.urandom(2 * 2**20))
    gated.write_bytes(os.urandom(4096))
    hub = FakeHub()
    hub.add_repo(
        TINY,
        {"tiny-llama4-Q8_0.gguf": model, "mmproj-tiny-llama4-f16.gguf": mmproj, "README.md": mmproj},
    )
    hub.add_repo(
        SPLIT,
        {
            **{f"Q8_0/{part.name}": part for part in parts},
            "Q8_0/tiny-llama4-Q8_0-BROKEN-00001-of-00002.gguf": parts[0],  # its part 2 is missing
            "tiny-llama4-Q2_K.gguf": model,
            "mmproj-F16.gguf": mmproj,
            "mmproj-F32.gguf": mmproj,
        },
    )
    hub.add_repo("acme/corrupt-GGUF", {"corrupt-Q4_K_M.gguf": corrupt}, corrupt=True)
    hub.add_repo("meta-llama/gated-GGUF", {"gated-Q4_K_M.gguf": gated}, gated=True)
    hub.add_repo("acme/slow-GGUF", {"slow-Q4_K_M.gguf": big}, slow_bps=SLOW_BPS)
    hub.add_repo(
        "acme/norange-GGUF", {"norange-Q4_K_M.gguf": corrupt.with_name("norange.gguf")}, ignore_range=True
    )
    hub.start()
    yield hub
    hub.stop()


def cli_env(hub: FakeHub, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(data_dir / "hf-home"), L4P_DATA_DIR=str(data_dir))
    env.update(extra)
    return env


def launch(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_line(result: subprocess.CompletedProcess) -> str:
    """Exit 2 and one `error:` line, the last thing said (a progress bar may come before)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_pull_hf_lands_the_model_and_its_mmproj_verified(hub, tiny_llama4, tmp_path):
    model, mmproj = tiny_llama4
    result = launch("pull", "--hf", TINY, env=cli_env(hub, tmp_path))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / "ggml-org" / "tiny-llama4-GGUF"
    landed, projector = folder / "tiny-llama4-Q8_0.gguf", folder / "mmproj-tiny-llama4-f16.gguf"
    assert result.stdout.split() == [str(landed), str(projector)]
    assert sha256(landed) == sha256(model) and sha256(projector) == sha256(mmproj)
    assert "MB/s" in result.stderr and "ETA" in result.stderr and "verified (sha256)" in result.stderr
    assert not list((tmp_path / "models" / ".partial").iterdir())  # nothing half-written left
    manifest = json.loads((folder / "pull.json").read_text())
    assert manifest["quants"]["Q8_0"] == {"parts": [landed.name], "mmproj": projector.name}
    # Only the model, its mmproj and the listing were asked for: not the README.
    asked = [r.path for r in hub.requests if r.server == "hub" and "/resolve/" in r.path]
    assert all(path.endswith(".gguf") for path in asked)

    again = launch("pull", "--hf", f"{TINY}:q8_0", env=cli_env(hub, tmp_path, HF_HUB_OFFLINE="1"))
    assert again.returncode == 0 and "already on disk" in again.stderr, again.stderr
    # Listed by `models` under the name --hf takes, and usable by that name.
    rows = {
        r["name"]: r
        for r in map(
            json.loads, launch("models", "--json", env=cli_env(hub, tmp_path)).stdout.split("\n")[:-1]
        )
    }
    assert rows[f"{TINY}:Q8_0"]["available"] is True and rows[f"{TINY}:Q8_0"]["vision"] is True
    ask = launch(
        "ask", "--model", f"{TINY}:Q8_0", "--max-tokens", "2", "--no-save", "hi", env=cli_env(hub, tmp_path)
    )
    assert ask.returncode == 0, ask.stderr


def test_ask_hf_pulls_a_split_gguf_from_a_subfolder_then_answers_offline(hub, tmp_path):
    ask = ("ask", "--hf", f"{SPLIT}:Q8_0", "--json", "--max-tokens", "4", "--temperature", "0", "hi")
    first = launch(*ask, env=cli_env(hub, tmp_path))
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "models" / "unsloth" / "tiny-llama4-split-GGUF"
    parts = sorted(p.name for p in folder.glob("*.gguf"))
    assert parts == [
        "mmproj-F16.gguf",  # F16 preferred over F32, as llama.cpp's -hf does
        *(f"tiny-llama4-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)),
    ]
    answer = json.loads(first.stdout.splitlines()[-1])
    assert answer["model"] == "tiny-llama4-Q8_0-00001-of-00003" and answer["completion_tokens"] > 0

    before = len(hub.requests)
    offline = launch(*ask, env=cli_env(hub, tmp_path, HF_HUB_OFFLINE="1"))
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout.splitlines()[-1])["completion_tokens"] > 0
    # Even without HF_HUB_OFFLINE, a pulled model is not asked of the hub again.
    again = launch(*ask, env=cli_env(hub, tmp_path))
    assert again.returncode == 0 and len(hub.requests) == before, again.stderr


def test_an_unknown_quant_names_those_the_repo_has(hub, tmp_path):
    line = error_line(launch("pull", "--hf", f"{SPLIT}:Q5_K_M", env=cli_env(hub, tmp_path)))
    assert "has no 'Q5_K_M' quant" in line and "Q2_K" in line and "Q8_0" in line
    assert "BROKEN" not in line  # a split model missing a part is not offered


def test_an_interrupted_pull_resumes_with_a_range_request(hub, tmp_path):
    env = cli_env(hub, tmp_path)
    repo = hub.repos["acme/slow-GGUF"]
    remote = repo.files["slow-Q4_K_M.gguf"]
    partial = tmp_path / "models" / ".partial" / f"{remote.sha256}.part"
    proc = subprocess.Popen(
        [sys.executable, "launch.py", "pull", "--hf", "acme/slow-GGUF"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (not partial.exists() or partial.stat().st_size < CHUNK) and time.monotonic() < deadline:
        assert proc.poll() is None, "the slow pull ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
    proc.wait(timeout=10)
    kept = partial.stat().st_size
    assert 0 < kept < remote.size

    repo.slow_bps = None
    try:
        resumed = launch("pull", "--hf", "acme/slow-GGUF", env=env)
    finally:
        repo.slow_bps = SLOW_BPS
    assert resumed.returncode == 0, resumed.stderr
    landed = tmp_path / "models" / "acme" / "slow-GGUF" / "slow-Q4_K_M.gguf"
    assert sha256(landed) == remote.sha256 and not partial.exists()
    ranges = hub.ranges("slow-Q4_K_M.gguf")
    assert ranges[-1] == f"bytes={kept}-", ranges  # the rest, not the whole file again


def test_a_corrupted_download_is_deleted_and_exits_2(hub, tmp_path):
    line = error_line(launch("pull", "--hf", "acme/corrupt-GGUF", env=cli_env(hub, tmp_path)))
    assert "corrupt-Q4_K_M.gguf is corrupt" in line and "sha256" in line and "deleted" in line
    models = tmp_path / "models"
    assert [p for p in models.rglob("*") if p.is_file()] == []


def test_a_gated_repo_says_how_to_log_in(hub, tmp_path):
    line = error_line(launch("pull", "--hf", "meta-llama/gated-GGUF", env=cli_env(hub, tmp_path)))
    assert "gated" in line and "HF_TOKEN" in line and "huggingface-cli login" in line
    with_token = launch("pull", "--hf", "meta-llama/gated-GGUF", env=cli_env(hub, tmp_path, HF_TOKEN="hf_x"))
    assert with_token.returncode == 0, with_token.stderr
    assert any(r.authorization == "Bearer hf_x" for r in hub.requests if "gated" in r.path)


def test_an_unknown_repo_and_a_bad_name_get_one_line(hub, tmp_path):
    line = error_line(launch("pull", "--hf", "nobody/nothing-GGUF", env=cli_env(hub, tmp_path)))
    assert "not found" in line and "private" in line
    line = error_line(launch("pull", "--hf", "../../etc", env=cli_env(hub, tmp_path)))
    assert "not a Hugging Face repo" in line


def test_no_network_and_offline_mode_get_one_line(hub, tmp_path):
    down = cli_env(hub, tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    line = error_line(launch("pull", "--hf", TINY, env=down))
    assert "cannot reach http://127.0.0.1:" in line
    line = error_line(launch("ask", "--hf", TINY, "hi", env=cli_env(hub, tmp_path, HF_HUB_OFFLINE="1")))
    assert "HF_HUB_OFFLINE" in line


def test_pull_refuses_to_start_without_the_disk_space(tmp_path):
    import shutil

    from hub.pull import Plan, Planned, PullError, run
    from hub.quants import RemoteFile

    free = shutil.disk_usage(tmp_path).free
    huge = RemoteFile("huge-Q4_K_M.gguf", free + 10**9, "0" * 64)
    dest = tmp_path / "models" / "huge-Q4_K_M.gguf"
    plan = Plan("acme/huge-GGUF", "c" * 40, "Q4_K_M", (Planned(huge, dest),), dest, None)
    with pytest.raises(PullError, match="not enough disk space"):
        run(plan, tmp_path / "models", endpoint="http://127.0.0.1:9")  # never reached
    assert not dest.exists()


def test_pull_a_preset_by_name_saves_it_under_the_preset_names(hub, tmp_path):
    registry = tmp_path / "models.toml"
    registry.write_text(
        f"""
default = "tiny-split"
[models.tiny-split]
label = "tiny split"
family = "llama4"
file = "tiny-llama4-Q8_0.gguf"
mmproj = "mmproj-tiny-llama4-F16.gguf"
hf_repo = "{SPLIT}"
hf_file = "Q8_0/tiny-llama4-Q8_0-00001-of-00003.gguf"
hf_mmproj = "mmproj-F16.gguf"
n_ctx = 512
"""
    )
    env = cli_env(hub, tmp_path, L4P_REGISTRY_FILE=str(registry))
    before = json.loads(launch("models", "--json", env=env).stdout)
    assert before["available"] is False
    result = launch("pull", "tiny-split", env=env)
    assert result.returncode == 0, result.stderr
    models = tmp_path / "models"
    assert sorted(p.name for p in models.glob("*.gguf")) == [
        "mmproj-tiny-llama4-F16.gguf",
        *(f"tiny-llama4-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)),
    ]
    after = json.loads(launch("models", "--json", env=env).stdout)
    assert after["available"] is True and after["missing"] == []
    assert after["size_gb"] == round(sum(p.stat().st_size for p in models.glob("*.gguf")) / 1e9, 2)
    line = error_line(launch("pull", "nope", env=env))
    assert "unknown model 'nope'" in line


def test_every_llama4_gguf_preset_says_where_to_pull_it(settings):
    from hub.quants import quant_tag
    from models.catalogue import load_registry

    ggufs = [s for s in load_registry(settings).specs.values() if s.backend == "llama.cpp" and s.is_llama]
    assert ggufs
    for spec in ggufs:
        assert spec.hf_repo.count("/") == 1 and spec.hf_repo.endswith("-GGUF"), spec.name
        assert quant_tag(spec.hf_file) == quant_tag(spec.model_path.name), spec.name
        assert spec.hf_mmproj.startswith("mmproj") and spec.mmproj_path is not None, spec.name


def test_quants_gather_split_parts_and_pick_the_best_that_fits():
    from hub.quants import RemoteFile, best_fitting, find_quant, mmproj_for, quant_tag, quants

    gb = 10**9
    stem = "UD-Q4_K_XL/Llama-4-Scout-17B-16E-Instruct-UD-Q4_K_XL"
    files = [
        RemoteFile("Llama-4-Scout-17B-16E-Instruct-UD-IQ1_S.gguf", 34 * gb, "a"),
        RemoteFile(f"{stem}-00002-of-00002.gguf", 16 * gb, "c"),  # listed out of order
        RemoteFile(f"{stem}-00001-of-00002.gguf", 50 * gb, "b"),
        RemoteFile("Q8_0/x-Q8_0-00001-of-00003.gguf", 40 * gb, "d"),  # parts 2 and 3 missing
        RemoteFile("BF16/x-BF16.gguf", 20 * gb, "e"),
        RemoteFile("mmproj-F32.gguf", 3 * gb, "f"),
        RemoteFile("mmproj-BF16.gguf", 2 * gb, "g"),
        RemoteFile("README.md", 1, None),
    ]
    found = quants(files)
    assert [q.tag for q in found] == ["BF16", "UD-IQ1_S", "UD-Q4_K_XL"]
    split = find_quant(found, "q4_k_xl")
    assert [p.sha256 for p in split.parts] == ["b", "c"] and split.size == 66 * gb
    assert mmproj_for(files, split).path == "mmproj-BF16.gguf"
    assert mmproj_for(files, split, "mmproj-F32.gguf").path == "mmproj-F32.gguf"
    # Full precision is not picked while a quant fits; nothing fitting says so.
    assert best_fitting(found, 60 * gb, 0.15).tag == "UD-IQ1_S"
    assert best_fitting(found, 80 * gb, 0.15).tag == "UD-Q4_K_XL"
    assert best_fitting(found, 30 * gb, 0.15) is None
    assert quant_tag("SmolLM2-135M-Instruct.Q4_1.gguf") == "Q4_1" and quant_tag("model.gguf") == ""


def test_a_second_pull_of_the_same_file_waits_its_turn(hub, tmp_path):
    env = cli_env(hub, tmp_path)
    repo = hub.repos["acme/slow-GGUF"]
    remote = repo.files["slow-Q4_K_M.gguf"]
    partial = tmp_path / "models" / ".partial" / f"{remote.sha256}.part"
    # Slow enough (~100 s) that the first pull is still downloading however long the
    # second one takes to start on a loaded machine; it is killed once checked.
    repo.slow_bps = SLOW_BPS // 16
    first = subprocess.Popen(
        [sys.executable, "launch.py", "pull", "--hf", "acme/slow-GGUF"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = error_line(launch("pull", "--hf", "acme/slow-GGUF", env=env))
        assert "another pull is downloading slow-Q4_K_M.gguf" in line
    finally:
        first.kill()
        first.wait(timeout=10)
        repo.slow_bps = SLOW_BPS
    assert partial.exists()  # the first pull's bytes stay for its resume


def test_a_resume_the_cdn_answers_in_full_still_lands_the_right_bytes(hub, tmp_path):
    remote = hub.repos["acme/norange-GGUF"].files["norange-Q4_K_M.gguf"]
    partial = tmp_path / "models" / ".partial" / f"{remote.sha256}.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(remote.source.read_bytes()[:12345])  # what a crashed pull left
    result = launch("pull", "--hf", "acme/norange-GGUF", env=cli_env(hub, tmp_path))
    assert result.returncode == 0, result.stderr
    assert hub.ranges("norange-Q4_K_M.gguf") == ["bytes=12345-"]  # asked for the rest, got it all
    assert sha256(tmp_path / "models" / "acme" / "norange-GGUF" / "norange-Q4_K_M.gguf") == remote.sha256


def test_garbage_left_in_a_partial_file_is_caught_deleted_and_pulled_clean_next_time(
    hub, tmp_path, tiny_llama4
):
    model, _ = tiny_llama4
    remote = hub.repos[TINY].files["tiny-llama4-Q8_0.gguf"]
    partial = tmp_path / "models" / ".partial" / f"{remote.sha256}.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 4096)  # a crash that left zeros, not the file's first bytes
    line = error_line(launch("pull", "--hf", f"{TINY}:Q8_0", env=cli_env(hub, tmp_path)))
    assert "tiny-llama4-Q8_0.gguf is corrupt" in line and not partial.exists()
    assert not (tmp_path / "models" / "ggml-org" / "tiny-llama4-GGUF" / "tiny-llama4-Q8_0.gguf").exists()
    again = launch("pull", "--hf", f"{TINY}:Q8_0", env=cli_env(hub, tmp_path))
    assert again.returncode == 0, again.stderr
    assert sha256(tmp_path / "models" / "ggml-org" / "tiny-llama4-GGUF" / "tiny-llama4-Q8_0.gguf") == sha256(
        model
    )


def test_delete_keeps_an_mmproj_another_model_on_disk_uses(tiny_llama4, tmp_path):
    import shutil

    from config import Settings
    from hub.local import delete_model
    from hub.pull import PullError
    from models.catalogue import load_registry

    model, mmproj = tiny_llama4
    models = tmp_path / "models"
    models.mkdir()
    for name in ("a.gguf", "b-00001-of-00002.gguf", "b-00002-of-00002.gguf"):
        shutil.copy(model, models / name)
    shutil.copy(mmproj, models / "mmproj-shared.gguf")
    registry_file = tmp_path / "models.toml"
    registry_file.write_text(
        """
[models.a]
file = "a.gguf"
mmproj = "mmproj-shared.gguf"
[models.b]
file = "b.gguf"
mmproj = "mmproj-shared.gguf"
"""
    )
    settings = Settings(data_dir=tmp_path, registry_file=registry_file)
    registry = load_registry(settings)
    assert registry.get("b").model_path.name == "b-00001-of-00002.gguf" and registry.get("b").available
    deleted = delete_model(registry.get("b"), registry, models)
    assert sorted(p.name for p in deleted) == ["b-00001-of-00002.gguf", "b-00002-of-00002.gguf"]
    assert (models / "mmproj-shared.gguf").exists()  # model a still uses it
    registry = load_registry(settings)
    assert [p.name for p in delete_model(registry.get("a"), registry, models)] == [
        "a.gguf",
        "mmproj-shared.gguf",
    ]
    with pytest.raises(PullError, match="only pulled models are deleted here"):
        delete_model(load_registry(Settings(data_dir=tmp_path)).get("smollm2-135m"), registry, models)
