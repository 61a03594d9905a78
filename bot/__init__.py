"""Switchboard's conversation engine: channel-agnostic, async, with injected ports."""
