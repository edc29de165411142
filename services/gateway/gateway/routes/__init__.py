"""Route mixins, one module per domain service; ``GatewayService`` inherits them all."""
