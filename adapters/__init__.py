"""Channel adapters: each maps its platform's events to `bot.Message` and renders `bot.Reply`."""
