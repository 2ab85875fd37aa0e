"""The event path: the relay that drains the event outbox into Temporal (relay.py) and enrollment, which
decides which published definitions an event starts or signals (enrollment.py)."""
