"""The stores: the only modules that speak SQL, Redis or AMQP (thin adapters).

Each translates its library's errors into ``farloom_tasks.errors``.
"""
