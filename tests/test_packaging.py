"""The distribution builds into a wheel and an sdist that twine accepts, with the typing marker inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_and_sdist_build_and_pass_twine_check(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "airflow_provider_tamtam", source / "airflow_provider_tamtam")
    out = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-3000:]
    artifacts = sorted(p.name for p in out.iterdir())
    assert artifacts == [
        "airflow_provider_tamtam-0.1.0-py3-none-any.whl",
        "airflow_provider_tamtam-0.1.0.tar.gz",
    ]
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir())],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    names = zipfile.ZipFile(out / artifacts[0]).namelist()
    assert "airflow_provider_tamtam/py.typed" in names
    assert "airflow_provider_tamtam/plugins/templates/credits.html" in names
    assert not [n for n in names if n.startswith("tests/")]
    entry_points = zipfile.ZipFile(out / artifacts[0]).read(
        "airflow_provider_tamtam-0.1.0.dist-info/entry_points.txt"
    )
    assert (
        b"[apache_airflow_provider]\nprovider_info = airflow_provider_tamtam:get_provider_info"
        in entry_points
    )
    assert (
        b"[airflow.plugins]\ntamtam_credits = airflow_provider_tamtam.plugins.credits_plugin:entry_point_plugin"
        in entry_points
    )
