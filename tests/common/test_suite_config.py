"""The suite's own settings (pyproject.toml): a per-test time limit, our deprecation warnings shown."""

from __future__ import annotations

import warnings


def test_every_test_has_a_time_limit(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed (the `test` extra)"
    assert 0 < float(pytestconfig.getini("timeout")) <= 1800


def test_our_deprecation_warnings_are_shown_third_party_ones_filtered():
    with warnings.catch_warnings(record=True) as seen:  # keeps the filters pytest set from pyproject.toml
        for module in ("sss_nnunet.network.unet", "tests.network.test_network", "some_library.module"):
            warnings.warn_explicit(f"from {module}", DeprecationWarning, "x.py", 1, module=module)
    assert [str(w.message) for w in seen] == ["from sss_nnunet.network.unet", "from tests.network.test_network"]
