"""The demo shop in Docker: gateway, catalog replicas and orders as containers on a network
of their own, with Docker's restart policy as the self-healing knob.

``inoculate.demo.shop_docker.system`` starts and drives it (the ``shop-docker`` embedded system);
``inoculate.demo.shop_docker.serve`` is what runs inside each container;
``inoculate.demo.shop_docker.image`` names the image. Kept free of imports so the container
loads only what it uses.
"""
