"""Domain operations shared by the API, the CLI, the demo seed and activities. Each is one database transaction
that writes the change AND the event row workflows and definitions hear (models.event.emit); none talks to
Temporal: the relay in the worker delivers the events."""
