"""The demo shop: the embedded system under test (gateway, catalog replicas, orders).

Start and drive it with :mod:`inoculate.demo.shop.client`; its knobs are
:class:`inoculate.demo.shop.knobs.ShopKnobs`.
Kept free of imports so that each service process loads only what it uses.
"""
