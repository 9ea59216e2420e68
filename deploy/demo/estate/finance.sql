-- Finance: the accounts-receivable ledger of the demo legacy estate.
--
-- Habits of an old system: fixed-width customer codes ("000042"), DECIMAL money, one-letter
-- status codes, uppercase names, no foreign keys, and a CRM_REF column added years later
-- that holds the sales system's customer code when a clerk remembered to fill it in.
--
-- Portable DDL (standard SQL, double-quoted identifiers): runs as-is on SQLite and
-- PostgreSQL, and on MariaDB with sql_mode ANSI_QUOTES. The next line sets that mode when
-- the file is fed to the mariadb client; every other database reads it as a comment.
/*M! SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES') */;

-- One row per customer account. CRM_REF: the sales system's code ('C-00042'), often null.
CREATE TABLE "AR_CUSTOMER" (
    "CUST_NO"   CHAR(6)        NOT NULL PRIMARY KEY,
    "NAME"      VARCHAR(60)    NOT NULL,
    "TAX_ID"    VARCHAR(20),
    "EMAIL"     VARCHAR(80),
    "CRM_REF"   VARCHAR(10)
);

-- STATUS: O open, P paid (payments cover AMOUNT), V void (never paid, never deleted).
CREATE TABLE "AR_INVOICE" (
    "INV_NO"    INTEGER        NOT NULL PRIMARY KEY,
    "CUST_NO"   CHAR(6)        NOT NULL,
    "INV_DATE"  DATE           NOT NULL,
    "AMOUNT"    DECIMAL(12,2)  NOT NULL,
    "STATUS"    CHAR(1)        NOT NULL
);
CREATE INDEX "AR_INVOICE_CUST_NO" ON "AR_INVOICE" ("CUST_NO");

-- A payment settles part or all of one invoice; a payment booked in error is deleted.
CREATE TABLE "AR_PAYMENT" (
    "PAY_NO"    INTEGER        NOT NULL PRIMARY KEY,
    "INV_NO"    INTEGER        NOT NULL,
    "PAY_DATE"  DATE           NOT NULL,
    "AMOUNT"    DECIMAL(12,2)  NOT NULL
);
CREATE INDEX "AR_PAYMENT_INV_NO" ON "AR_PAYMENT" ("INV_NO");

-- The chart of accounts. ACCT_TYPE: A asset, L liability, R revenue, E expense.
CREATE TABLE "GL_ACCOUNT" (
    "ACCT_NO"   CHAR(6)        NOT NULL PRIMARY KEY,
    "DESCR"     VARCHAR(60)    NOT NULL,
    "ACCT_TYPE" CHAR(1)        NOT NULL
);
