"""The Kamailio front: several appliances behind one SIP dispatcher."""
