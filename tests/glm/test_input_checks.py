"""glm.fit input checks added for issue 17: complex X, Poisson with y all zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raytune_opt import glm
from raytune_opt.errors import ConfigError, ConfigTypeError

X = np.column_stack([np.ones(20), np.linspace(0.0, 1.0, 20)])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_complex_design_is_a_type_error_not_a_silent_cast(as_tensor):
    Xc = X.astype(complex) + 1j
    with pytest.raises(ConfigTypeError, match="X must be real"):
        glm.fit(torch.from_numpy(Xc) if as_tensor else Xc, np.ones(20))
    with pytest.raises(ConfigTypeError, match="y must be real"):
        glm.fit(X, np.ones(20) + 0j)


def test_poisson_with_y_all_zero_is_a_config_error():
    with pytest.raises(ConfigError, match="y is 0 on every row with positive weight"):
        glm.fit(X, np.zeros(20), family="poisson")
    w = np.r_[np.zeros(10), np.ones(10)]  # the only nonzero y have weight 0
    with pytest.raises(ConfigError, match="y is 0 on every row"):
        glm.fit(X, np.r_[np.ones(10), np.zeros(10)], family="poisson", weights=w)
