"""ClearML server calls the ClearML SDK makes besides events.*: `auth.login`, `projects.*` and
`tasks.*` (routes), in clearml-server's shapes (shapes), over the ClickHouse tables of
migration 009 (store); the session tokens (tokens), the caller (caller) and the `{meta, data}`
envelope on every ClearML answer (envelope, middleware).

Importing the package loads nothing: import its modules.
"""
