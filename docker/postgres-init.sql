-- The compose lab's postgres profile: one database per tenant.
CREATE DATABASE contoso;
CREATE DATABASE fabrikam;
