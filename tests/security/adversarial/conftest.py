"""One world per test module and backend (the cases of a module only read it, or are refused
writes that must leave it unchanged): the secured server of ``tests/security`` seeded with the
scenario, its adversaries and the tool checks (``scenario.Arena``)."""
from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, fresh_database, running_app
from tests.security.conftest import secure_settings_for
from tests.security.world import seed_world

from .scenario import Arena, build_arena


@pytest.fixture(scope="module", params=BACKENDS)
async def arena(request, tmp_path_factory, rsa_key) -> Arena:
    tmp = tmp_path_factory.mktemp("adversarial")
    settings = secure_settings_for(fresh_database(request, request.param, tmp), tmp, rsa_key)
    async with running_app(settings) as app:
        yield await build_arena(await seed_world(app))
