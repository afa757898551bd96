DROP TABLE admin_link_nonces;
