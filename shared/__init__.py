"""Code every Xiaopu service needs: config, DB, outbox/inbox, contracts, errors, clock, logging.

Nothing in here imports a service.
"""
