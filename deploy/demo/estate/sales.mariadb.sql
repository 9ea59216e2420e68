-- Sales: CRM, orders, stores, tills (POS) and warehouse stock (WMS) of the demo legacy estate.
--
-- The MariaDB edition of sales.sql (keep the two in step): the same tables and columns,
-- with DATETIME(6) where sales.sql says TIMESTAMP, because a MariaDB TIMESTAMP is converted
-- through the session time zone and ends in 2038. Double-quoted identifiers need sql_mode
-- ANSI_QUOTES; the next line sets it when the file is fed to the mariadb client.
/*M! SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES') */;

-- rep_empno: the account manager, an EMPNO of HR's EMP; tax_id: often unknown.
CREATE TABLE "crm_customer" (
    "code"             VARCHAR(8)     NOT NULL PRIMARY KEY,
    "name"             VARCHAR(60)    NOT NULL,
    "email"            VARCHAR(80),
    "tax_id"           VARCHAR(20),
    "rep_empno"        INTEGER
);

CREATE TABLE "product" (
    "sku"              VARCHAR(12)    NOT NULL PRIMARY KEY,
    "label"            VARCHAR(60)    NOT NULL,
    "unit_price_cents" INTEGER        NOT NULL
);

-- kind: S shop (has tills), W warehouse (receives from suppliers). Stock locations are stores.
CREATE TABLE "store" (
    "store_code"       CHAR(4)        NOT NULL PRIMARY KEY,
    "name"             VARCHAR(40)    NOT NULL,
    "city"             VARCHAR(40)    NOT NULL,
    "kind"             CHAR(1)        NOT NULL
);

-- status: N new, S shipped, X cancelled.
CREATE TABLE "sales_order" (
    "order_no"         INTEGER        NOT NULL PRIMARY KEY,
    "customer_code"    VARCHAR(8)     NOT NULL,
    "ordered_at"       DATETIME(6)    NOT NULL,
    "status"           CHAR(1)        NOT NULL
);

CREATE TABLE "order_line" (
    "order_no"         INTEGER        NOT NULL,
    "line_no"          INTEGER        NOT NULL,
    "sku"              VARCHAR(12)    NOT NULL,
    "qty"              INTEGER        NOT NULL,
    "unit_price_cents" INTEGER        NOT NULL,
    PRIMARY KEY ("order_no", "line_no")
);

-- One till transaction of one article; a voided ticket is deleted.
CREATE TABLE "pos_ticket" (
    "ticket_no"        INTEGER        NOT NULL PRIMARY KEY,
    "store_code"       CHAR(4)        NOT NULL,
    "sku"              VARCHAR(12)    NOT NULL,
    "qty"              INTEGER        NOT NULL,
    "amount_cents"     INTEGER        NOT NULL,
    "sold_at"          DATETIME(6)    NOT NULL
);
CREATE INDEX "pos_ticket_store_sold_at" ON "pos_ticket" ("store_code", "sold_at");
CREATE INDEX "pos_ticket_sku_store" ON "pos_ticket" ("sku", "store_code");

-- kind: R receipt (qty > 0), T transfer (two rows, -qty at the source and +qty at the
-- destination, sharing ref), A adjustment (count correction, either sign).
CREATE TABLE "stock_movement" (
    "id"               INTEGER        NOT NULL PRIMARY KEY,
    "sku"              VARCHAR(12)    NOT NULL,
    "location"         CHAR(4)        NOT NULL,
    "kind"             CHAR(1)        NOT NULL,
    "qty"              INTEGER        NOT NULL,
    "moved_at"         DATETIME(6)    NOT NULL,
    "ref"              VARCHAR(12)
);
CREATE INDEX "stock_movement_sku_location" ON "stock_movement" ("sku", "location");
