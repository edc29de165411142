"""A fresh Debian machine has no CJK font package (fonts-wqy-microhei, Noto CJK, Droid fallback)
and no ``zbarimg`` (zbar-tools). Here those are hidden, not uninstalled: every command runs in a
private mount namespace (``unshare -m``, root) where empty directories cover the system's font
directories and a non-executable empty file covers ``zbarimg``. In there, with
``SHARE_FONT_PATH`` unset:

* the machine provably has no CJK font of its own (``find_cjk_font(bundled=())`` finds none);
* the poster unit tests pass (the bundled font draws, zxing-cpp reads the QR codes);
* ``make run``'s supervisor comes up healthy, and ``make demo`` (told only ``GATEWAY_PORT``)
  renders both posters and reads each one's QR code back to the landing URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.launcher import SERVICES, free_port
from shared.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="hiding system files needs root and unshare(1) (CI and the dev machines are root)",
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A command prefix that runs a program on this machine as a fresh one would see it."""
    tmp = tmp_path_factory.mktemp("fresh")
    empty = tmp / "empty"
    empty.mkdir()
    not_a_program = tmp / "not-a-program"
    not_a_program.write_bytes(b"")
    not_a_program.chmod(0o644)
    mounts = [f"mount --bind {empty} {d}" for d in FONT_DIRS if os.path.isdir(d)]
    zbarimg = shutil.which("zbarimg")
    if zbarimg:
        mounts.append(f"mount --bind {not_a_program} {zbarimg}")
    script = " && ".join(mounts + ['exec "$@"'])
    env = {k: v for k, v in os.environ.items() if k != "SHARE_FONT_PATH"}
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "fresh"], env


def test_inside_nothing_of_the_system_font_or_zbar_is_left(fresh):
    prefix, env = fresh
    probe = (
        "import shutil; from share.posters import find_cjk_font; "
        "assert shutil.which('zbarimg') is None, 'zbarimg still on PATH'; "
        "path, why = find_cjk_font(bundled=()); assert path is None, path; "
        "print(find_cjk_font()[1])"
    )
    out = subprocess.run(
        [*prefix, sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "bundled with the project"


def test_the_poster_tests_pass_without_a_system_font_or_zbar(fresh):
    prefix, env = fresh
    out = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            "services/share/tests/unit/test_posters.py",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout


def test_make_run_is_healthy_and_make_demo_reads_the_posters(fresh, tmp_path):
    prefix, env = fresh
    vhost = f"xt_fresh_{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        timeout=60,
    )
    port = free_port()
    env = {
        **env,
        "GATEWAY_PORT": str(port),
        "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "XIAOPU_DATA_DIR": str(tmp_path / "data"),
        "XIAOPU_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "XIAOPU_ADMIN_TOKEN": secrets.token_urlsafe(16),
        "XIAOPU_SECRET_KEY": secrets.token_urlsafe(16),
        "XIAOPU_TEST_MODE": "1",
        "XIAOPU_STOP_GRACE": "8",
        "LOG_LEVEL": "WARNING",
        **{f"{s.upper()}_DATABASE_URL": f"sqlite:///{tmp_path}/{s}.db" for s in SERVICES},
    }
    log = tmp_path / "platform.log"
    with open(log, "wb") as out:
        platform = subprocess.Popen(
            [*prefix, sys.executable, "scripts/platform.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Xiaopu is up" in log.read_text() or platform.poll() is not None, 120)
        assert "Xiaopu is up" in log.read_text(), log.read_text()[-3000:]
        health = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()
        assert health["status"] == "ok", health
        assert health["detail"]["share"]["poster_font"].endswith("share/fonts/wqy-microhei.ttc")

        demo_env = {k: v for k, v in env.items() if k != "XIAOPU_URL"}  # GATEWAY_PORT alone
        demo = subprocess.run(
            [*prefix, sys.executable, "scripts/demo.py"],
            cwd=ROOT,
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert f"against http://127.0.0.1:{port}" in demo.stdout
        assert (
            demo.stdout.count("(QR decodes to the landing URL (?src=qr: counted as a scan))") == 2
        ), demo.stdout
    finally:
        if platform.poll() is None:
            os.kill(platform.pid, signal.SIGINT)
            try:
                platform.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(platform.pid, signal.SIGKILL)
                platform.wait()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)
    assert platform.returncode == 0
    assert "Traceback" not in log.read_text()
