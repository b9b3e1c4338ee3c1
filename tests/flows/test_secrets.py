"""Credentials named as Prefect Secret blocks are read from the Prefect API, and never shown."""

from __future__ import annotations

import pytest

from carecast.errors import CredentialError
from carecast.secrets import BlockSecret, resolve

pytestmark = pytest.mark.prefect


def test_a_block_reference_reads_the_secret_block(prefect_api: None) -> None:
    from prefect.blocks.system import Secret

    import carecast_flows.secrets  # noqa: F401  registers the block reader

    Secret(value="canary-block-value").save("carecast-test-token", overwrite=True)
    value = resolve(BlockSecret(block="carecast-test-token"))
    assert value.get_secret_value() == "canary-block-value"
    assert "canary" not in repr(value) and "canary" not in str(value)


def test_a_missing_block_names_where_it_looked(prefect_api: None) -> None:
    import carecast_flows.secrets  # noqa: F401

    with pytest.raises(CredentialError, match="Prefect Secret block 'no-such-block'") as raised:
        resolve(BlockSecret(block="no-such-block"))
    assert raised.value.__cause__ is not None
