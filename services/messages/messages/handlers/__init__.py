"""Command handlers of the messages service, one module per seam:

- ``threads``:       buyer questions (after an order, before buying), replies, forward, escalate,
                     close
- ``contacts``:      who handles what for an order (no personal phones), where a pre-sale
                     question goes
- ``notifications``: what each platform event owes to whom, preferences, the shop-picks read
                     model, the states of a notification being sent
"""
