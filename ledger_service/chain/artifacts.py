"""Compiled contract artifacts (brownie's build/contracts/*.json) and deployment manifests.

The service never compiles: it reads the ABIs and bytecode that the contract
toolchain wrote, and the manifest ``deployments/<chainId>.json`` that
``scripts/deploy.py`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ledger_service.errors import ConfigurationError

CONTRACT_NAMES = ("ProvenanceLedger", "ReturnsEscrow", "ExchangeEscrow", "DevStablecoin", "BatchAnchor")


class Artifact(BaseModel):
    """ABI and creation bytecode of one contract."""

    model_config = ConfigDict(frozen=True)

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def load_artifact(name: str, artifacts_dir: Path) -> Artifact:
    """Reads ``<artifacts_dir>/<name>.json``; a clear error if the contracts were not compiled."""
    path = artifacts_dir / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"contract artifact {path} not found: compile the contracts first (scripts/test.sh or scripts/run.sh)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"contract artifact {path} is not valid JSON: {exc}") from None
    try:
        return Artifact(name=name, abi=raw["abi"], bytecode=raw.get("bytecode", ""))
    except (KeyError, ValidationError) as exc:
        raise ConfigurationError(f"contract artifact {path} has no usable ABI: {exc}") from None


class DeployedContract(BaseModel):
    """Where one contract lives."""

    model_config = ConfigDict(frozen=True)

    address: str
    block: int = Field(ge=0)
    tx_hash: str = Field(alias="txHash")

    @field_validator("address")
    @classmethod
    def _checksum(cls, value: str) -> str:
        from eth_utils.address import is_address, to_checksum_address

        if not is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return to_checksum_address(value)


class Deployment(BaseModel):
    """A deployment manifest: which chain, from which block, which addresses."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    chain_id: int = Field(alias="chainId", ge=1)
    genesis_hash: str = Field(alias="genesisHash", pattern=r"^0x[0-9a-fA-F]{64}$")
    deploy_block: int = Field(alias="deployBlock", ge=0)
    contracts: dict[str, DeployedContract]
    roles: dict[str, list[str]] = Field(default_factory=dict)

    def address_of(self, name: str) -> str:
        """The address of contract ``name``; a clear error if the manifest lacks it."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise ConfigurationError(f"the deployment manifest has no {name} contract") from None


def load_deployment(path: Path) -> Deployment:
    """Reads and validates a deployment manifest."""
    try:
        return Deployment.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"deployment manifest {path} not found: deploy first (scripts/run.sh)") from None
    except ValidationError as exc:
        raise ConfigurationError(f"deployment manifest {path} is invalid: {exc}") from None
