"""The service's one settings object, read from the environment and `.env`.

Every variable is prefixed ``LEDGER_`` (e.g. ``LEDGER_RPC_URL``). No other
module reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed configuration with defaults for a local development run (anvil + SQLite)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    rpc_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8545"), description="JSON-RPC URL of the chain")
    database_url: str = Field(
        default="sqlite:///var/ledger.sqlite3",
        description="SQLAlchemy URL of the index: sqlite:///path or postgresql+psycopg://...",
    )
    deployments_dir: Path = Field(default=Path("deployments"), description="Folder of <chainId>.json manifests")
    deployment_file: Path | None = Field(default=None, description="Manifest to use instead of <chainId>.json")
    artifacts_dir: Path = Field(default=Path("build/contracts"), description="Compiled contract artifacts")
    finality_depth: int = Field(default=12, ge=1, le=10_000, description="Blocks after which a block is final")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=False, description="Log one JSON object per line instead of text")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
