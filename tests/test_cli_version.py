"""``raytune-opt --version`` names the installed version."""

from __future__ import annotations

import pytest

import raytune_opt
from raytune_opt.cli import main


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"raytune-opt {raytune_opt.__version__}"
