"""Operations: `/healthz`, `/readyz`, `/metrics`, read-only `/sql`, API key management."""
