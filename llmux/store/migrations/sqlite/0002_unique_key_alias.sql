-- A key alias names one key: the index enforces it, so two concurrent /key/generate calls with
-- one alias cannot both succeed. A database written before this check may hold duplicates:
-- the oldest key keeps the alias, the later ones lose it (column and JSON copy alike).

UPDATE keys SET key_alias = NULL, data = json_set(data, '$.key_alias', json('null'))
WHERE key_alias IS NOT NULL AND EXISTS (
    SELECT 1 FROM keys AS older
    WHERE older.key_alias = keys.key_alias
      AND (older.created_at < keys.created_at
           OR (older.created_at = keys.created_at AND older.token < keys.token))
);
DROP INDEX keys_alias;
CREATE UNIQUE INDEX keys_alias ON keys (key_alias);
