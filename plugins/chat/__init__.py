"""The chat sinks: Teams, Mattermost, Slack and Discord, over a shared layout."""
