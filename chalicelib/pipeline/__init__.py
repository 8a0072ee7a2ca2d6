"""Where decisions meet side effects: the event handler's steps, delivery, the scheduler, the
heartbeats, the parked-events consumer and the service that wires them. Used by the Lambda
handlers and by replay alike, with the store and publisher each gives it.
"""
