// SPDX-License-Identifier: Apache-2.0
#include "tomlreader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace Sluice::Security {

const TomlValue *TomlValue::find(const std::string &lowerKey) const
{
    for (const auto &[key, value] : entries) {
        if (key == lowerKey)
            return &value;
    }
    return nullptr;
}

TomlValue *TomlValue::find(const std::string &lowerKey)
{
    for (auto &[key, value] : entries) {
        if (key == lowerKey)
            return &value;
    }
    return nullptr;
}

const char *TomlValue::kindName(Kind kind)
{
    switch (kind) {
    case Kind::String: return "string";
    case Kind::Integer: return "integer";
    case Kind::Float: return "float";
    case Kind::Boolean: return "boolean";
    case Kind::Array: return "array";
    case Kind::Table: return "table";
    }
    return "value";
}

namespace {

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

void appendUtf8(std::string &out, std::uint32_t cp)
{
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | (cp >> 6)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | (cp >> 12)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (cp >> 18)));
        out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    }
}

struct ParseFailure {
    int line;
    std::string message;
};

class Parser
{
public:
    Parser(const std::string &content)
        : s(content)
    {
    }

    TomlValue parseDocument()
    {
        TomlValue root;
        root.kind = TomlValue::Kind::Table;
        root.line = 1;
        TomlValue *current = &root;
        std::string currentPath;
        while (true) {
            skipBlankLinesAndComments();
            if (atEnd())
                break;
            if (peek() == '[') {
                const int headerLine = line;
                const bool arrayHeader = peek(1) == '[';
                pos += arrayHeader ? 2 : 1;
                skipSpaces();
                std::vector<std::pair<std::string, std::string>> keys = parseKeyPath();
                skipSpaces();
                if (arrayHeader) {
                    expect(']', "']]' closing an array-of-tables header");
                    expect(']', "']]' closing an array-of-tables header");
                } else {
                    expect(']', "']' closing a table header");
                }
                endOfLine();
                current = openHeader(root, keys, arrayHeader, headerLine);
                currentPath = joinPath(keys);
                continue;
            }
            parseKeyValue(*current, currentPath);
            endOfLine();
        }
        return root;
    }

private:
    const std::string &s;
    std::size_t pos = 0;
    int line = 1;

    [[noreturn]] void failAt(int at, std::string message) { throw ParseFailure{at, std::move(message)}; }
    [[noreturn]] void failHere(std::string message) { failAt(line, std::move(message)); }

    bool atEnd() const { return pos >= s.size(); }
    char peek(std::size_t ahead = 0) const { return pos + ahead < s.size() ? s[pos + ahead] : '\0'; }
    char take()
    {
        const char c = s[pos++];
        if (c == '\n')
            ++line;
        return c;
    }
    void expect(char c, const char *what)
    {
        if (peek() != c)
            failHere(std::string("expected ") + what);
        take();
    }
    void skipSpaces()
    {
        while (!atEnd() && (peek() == ' ' || peek() == '\t'))
            ++pos;
    }
    void skipComment()
    {
        if (peek() == '#') {
            while (!atEnd() && peek() != '\n') {
                const unsigned char c = static_cast<unsigned char>(peek());
                if (c < 0x20 && c != '\t' && c != '\r')
                    failHere("control character in a comment");
                ++pos;
            }
        }
    }
    void skipBlankLinesAndComments()
    {
        while (!atEnd()) {
            skipSpaces();
            skipComment();
            if (peek() == '\r' && peek(1) == '\n')
                ++pos;
            if (peek() == '\n') {
                take();
                continue;
            }
            break;
        }
    }
    // Inside arrays: whitespace, newlines and comments.
    void skipArraySpace()
    {
        while (!atEnd()) {
            const char c = peek();
            if (c == ' ' || c == '\t' || c == '\r')
                ++pos;
            else if (c == '\n')
                take();
            else if (c == '#')
                skipComment();
            else
                break;
        }
    }
    void endOfLine()
    {
        skipSpaces();
        skipComment();
        if (peek() == '\r' && peek(1) == '\n')
            ++pos;
        if (atEnd())
            return;
        if (peek() != '\n')
            failHere(std::string("unexpected '") + peek() + "' after a value (one key = value per line)");
        take();
    }

    static std::string joinPath(const std::vector<std::pair<std::string, std::string>> &keys)
    {
        std::string out;
        for (const auto &k : keys) {
            if (!out.empty())
                out.push_back('.');
            out += k.second;
        }
        return out;
    }

    // A key: bare, "basic" or 'literal'; dotted parts separated by '.'.
    std::vector<std::pair<std::string, std::string>> parseKeyPath()
    {
        std::vector<std::pair<std::string, std::string>> keys;
        while (true) {
            skipSpaces();
            std::string key;
            if (peek() == '"') {
                key = parseBasicString();
            } else if (peek() == '\'') {
                key = parseLiteralString();
            } else {
                const std::size_t start = pos;
                while (!atEnd() && (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_' || peek() == '-'))
                    ++pos;
                if (pos == start)
                    failHere(atEnd() ? "expected a key at the end of the file"
                                     : std::string("expected a key, found '") + peek() + "'");
                key = s.substr(start, pos - start);
            }
            keys.emplace_back(lower(key), key);
            skipSpaces();
            if (peek() != '.')
                break;
            ++pos;
        }
        return keys;
    }

    TomlValue *descend(TomlValue &table, const std::pair<std::string, std::string> &key, int at,
                       const std::string &pathSoFar)
    {
        TomlValue *next = table.find(key.first);
        if (!next) {
            TomlValue created;
            created.kind = TomlValue::Kind::Table;
            created.line = at;
            created.spelling = key.second;
            table.entries.emplace_back(key.first, std::move(created));
            return &table.entries.back().second;
        }
        if (next->kind == TomlValue::Kind::Array && next->arrayOfTables && !next->items.empty())
            return &next->items.back();
        if (next->kind != TomlValue::Kind::Table || next->inlineClosed)
            failAt(at, "key '" + pathSoFar + "' is already defined as " + TomlValue::kindName(next->kind)
                           + " on line " + std::to_string(next->line));
        return next;
    }

    TomlValue *openHeader(TomlValue &root, const std::vector<std::pair<std::string, std::string>> &keys,
                          bool arrayHeader, int at)
    {
        TomlValue *table = &root;
        std::string path;
        for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
            path += (path.empty() ? "" : ".") + keys[i].second;
            table = descend(*table, keys[i], at, path);
        }
        const auto &last = keys.back();
        path += (path.empty() ? "" : ".") + last.second;
        TomlValue *existing = table->find(last.first);
        if (arrayHeader) {
            if (!existing) {
                TomlValue array;
                array.kind = TomlValue::Kind::Array;
                array.arrayOfTables = true;
                array.line = at;
                array.spelling = last.second;
                table->entries.emplace_back(last.first, std::move(array));
                existing = &table->entries.back().second;
            } else if (existing->kind != TomlValue::Kind::Array || !existing->arrayOfTables) {
                failAt(at, "[[" + path + "]] redefines key '" + path + "' defined on line "
                               + std::to_string(existing->line) + " as " + TomlValue::kindName(existing->kind));
            }
            TomlValue element;
            element.kind = TomlValue::Kind::Table;
            element.line = at;
            element.definedByHeader = true;
            element.spelling = last.second;
            existing->items.push_back(std::move(element));
            return &existing->items.back();
        }
        if (existing) {
            if (existing->kind != TomlValue::Kind::Table || existing->inlineClosed)
                failAt(at, "[" + path + "] redefines key '" + path + "' defined on line "
                               + std::to_string(existing->line) + " as " + TomlValue::kindName(existing->kind));
            if (existing->definedByHeader)
                failAt(at, "table [" + path + "] is defined twice (first on line " + std::to_string(existing->line) + ")");
            existing->definedByHeader = true;
            existing->line = at;
            return existing;
        }
        TomlValue created;
        created.kind = TomlValue::Kind::Table;
        created.line = at;
        created.definedByHeader = true;
        created.spelling = last.second;
        table->entries.emplace_back(last.first, std::move(created));
        return &table->entries.back().second;
    }

    void parseKeyValue(TomlValue &table, const std::string &tablePath)
    {
        const int keyLine = line;
        const auto keys = parseKeyPath();
        skipSpaces();
        if (peek() != '=')
            failHere("expected '=' after key '" + joinPath(keys) + "'");
        ++pos;
        skipSpaces();
        std::string path = tablePath;
        TomlValue *target = &table;
        for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
            path += (path.empty() ? "" : ".") + keys[i].second;
            target = descend(*target, keys[i], keyLine, path);
        }
        path += (path.empty() ? "" : ".") + keys.back().second;
        if (const TomlValue *existing = target->find(keys.back().first))
            failAt(keyLine, "key '" + path + "' is defined twice (first on line " + std::to_string(existing->line) + ")");
        TomlValue value = parseValue(path);
        value.spelling = keys.back().second;
        target->entries.emplace_back(keys.back().first, std::move(value));
    }

    TomlValue parseValue(const std::string &path)
    {
        TomlValue value;
        value.line = line;
        const char c = peek();
        if (atEnd() || c == '\n' || c == '\r' || c == '#')
            failHere("key '" + path + "' has no value");
        if (c == '"') {
            value.kind = TomlValue::Kind::String;
            value.text = (peek(1) == '"' && peek(2) == '"') ? parseMultiline(true) : parseBasicString();
        } else if (c == '\'') {
            value.kind = TomlValue::Kind::String;
            value.text = (peek(1) == '\'' && peek(2) == '\'') ? parseMultiline(false) : parseLiteralString();
        } else if (c == '[') {
            value.kind = TomlValue::Kind::Array;
            value.inlineClosed = true;
            take();
            while (true) {
                skipArraySpace();
                if (peek() == ']') {
                    take();
                    break;
                }
                value.items.push_back(parseValue(path + "[" + std::to_string(value.items.size()) + "]"));
                skipArraySpace();
                if (peek() == ',') {
                    take();
                    continue;
                }
                if (peek() == ']') {
                    take();
                    break;
                }
                failHere("expected ',' or ']' in the array of key '" + path + "'");
            }
        } else if (c == '{') {
            value.kind = TomlValue::Kind::Table;
            value.inlineClosed = true;
            take();
            skipSpaces();
            if (peek() == '}') {
                take();
                return value;
            }
            while (true) {
                skipSpaces();
                parseKeyValue(value, path);
                skipSpaces();
                if (peek() == ',') {
                    take();
                    continue;
                }
                if (peek() == '}') {
                    take();
                    break;
                }
                failHere("expected ',' or '}' in the inline table of key '" + path + "'");
            }
        } else {
            const std::size_t start = pos;
            while (!atEnd() && peek() != ',' && peek() != ']' && peek() != '}' && peek() != '\n' && peek() != '#'
                   && peek() != ' ' && peek() != '\t' && peek() != '\r')
                ++pos;
            const std::string word = s.substr(start, pos - start);
            if (word == "true" || word == "false") {
                value.kind = TomlValue::Kind::Boolean;
                value.boolean = word == "true";
            } else if (!parseNumber(word, value)) {
                failAt(value.line, "key '" + path + "' has the value '" + word
                                       + "', which is not a string, number, boolean, array or table"
                                       + (word.find('-') != std::string::npos || word.find(':') != std::string::npos
                                              ? " (dates and times are not supported)" : ""));
            }
        }
        return value;
    }

    static bool parseNumber(std::string word, TomlValue &value)
    {
        if (word == "inf" || word == "+inf" || word == "-inf" || word == "nan" || word == "+nan" || word == "-nan") {
            value.kind = TomlValue::Kind::Float;
            value.number = word.find("nan") != std::string::npos ? std::nan("")
                           : (word[0] == '-' ? -INFINITY : INFINITY);
            return true;
        }
        // Underscores may only stand between digits.
        for (std::size_t i = 0; i < word.size(); ++i) {
            if (word[i] == '_' && (i == 0 || i + 1 >= word.size() || !std::isxdigit(static_cast<unsigned char>(word[i - 1]))
                                   || !std::isxdigit(static_cast<unsigned char>(word[i + 1]))))
                return false;
        }
        word.erase(std::remove(word.begin(), word.end(), '_'), word.end());
        if (word.empty())
            return false;
        std::string digits = word;
        bool negative = false;
        if (digits[0] == '+' || digits[0] == '-') {
            negative = digits[0] == '-';
            digits.erase(0, 1);
        }
        int base = 10;
        if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o' || digits[1] == 'b')) {
            base = digits[1] == 'x' ? 16 : digits[1] == 'o' ? 8 : 2;
            digits.erase(0, 2);
        }
        if (digits.empty())
            return false;
        if (base != 10 || digits.find_first_of(".eE") == std::string::npos) {
            std::int64_t v = 0;
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
            if (ec != std::errc() || end != digits.data() + digits.size())
                return false;
            if (base == 10 && digits.size() > 1 && digits[0] == '0')
                return false; // leading zeros are not TOML
            value.kind = TomlValue::Kind::Integer;
            value.integer = negative ? -v : v;
            return true;
        }
        double d = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), d);
        if (ec != std::errc() || end != digits.data() + digits.size() || !std::isdigit(static_cast<unsigned char>(digits[0]))
            || !std::isdigit(static_cast<unsigned char>(digits.back())))
            return false;
        value.kind = TomlValue::Kind::Float;
        value.number = negative ? -d : d;
        return true;
    }

    std::uint32_t parseHexEscape(int count)
    {
        std::uint32_t cp = 0;
        for (int i = 0; i < count; ++i) {
            const char h = peek();
            if (!std::isxdigit(static_cast<unsigned char>(h)))
                failHere("bad unicode escape in a string");
            cp = cp * 16 + std::uint32_t(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
            ++pos;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            failHere("unicode escape names no scalar value");
        return cp;
    }

    void parseEscape(std::string &out)
    {
        take(); // backslash
        const char e = atEnd() ? '\0' : take();
        switch (e) {
        case 'b': out.push_back('\b'); break;
        case 't': out.push_back('\t'); break;
        case 'n': out.push_back('\n'); break;
        case 'f': out.push_back('\f'); break;
        case 'r': out.push_back('\r'); break;
        case 'e': out.push_back('\x1B'); break;
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case 'u': appendUtf8(out, parseHexEscape(4)); break;
        case 'U': appendUtf8(out, parseHexEscape(8)); break;
        default:
            failHere(std::string("unknown escape '\\") + e
                     + "' in a basic string (write regexes in '''literal''' strings, or double the backslash)");
        }
    }

    std::string parseBasicString()
    {
        const int startLine = line;
        take();
        std::string out;
        while (true) {
            if (atEnd() || peek() == '\n')
                failAt(startLine, "string is not closed on its line");
            const char c = peek();
            if (c == '"') {
                take();
                return out;
            }
            if (c == '\\') {
                parseEscape(out);
                continue;
            }
            out.push_back(take());
        }
    }

    std::string parseLiteralString()
    {
        const int startLine = line;
        take();
        std::string out;
        while (true) {
            if (atEnd() || peek() == '\n')
                failAt(startLine, "literal string is not closed on its line");
            if (peek() == '\'') {
                take();
                return out;
            }
            out.push_back(take());
        }
    }

    void skipFirstNewline()
    {
        if (peek() == '\r' && peek(1) == '\n')
            ++pos;
        if (peek() == '\n')
            take();
    }

    // '''literal''' (basic == false) or """basic""" (escapes, line-ending backslash).
    std::string parseMultiline(bool basic)
    {
        const char quote = basic ? '"' : '\'';
        const int startLine = line;
        pos += 3;
        skipFirstNewline();
        std::string out;
        while (true) {
            if (atEnd())
                failAt(startLine, basic ? "multi-line string (\"\"\") is not closed"
                                        : "multi-line literal string (''') is not closed");
            if (peek() == quote && peek(1) == quote && peek(2) == quote) {
                pos += 3;
                // Up to two quotes right before the closing ones belong to the string.
                for (int extra = 0; extra < 2 && peek() == quote; ++extra) {
                    out.push_back(quote);
                    ++pos;
                }
                return out;
            }
            if (basic && peek() == '\\') {
                // A backslash ending a line trims the newline and the whitespace after it.
                std::size_t look = pos + 1;
                while (look < s.size() && (s[look] == ' ' || s[look] == '\t' || s[look] == '\r'))
                    ++look;
                if (look < s.size() && s[look] == '\n') {
                    pos = look;
                    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
                        take();
                    continue;
                }
                parseEscape(out);
                continue;
            }
            out.push_back(take());
        }
    }
};

} // namespace

Result<TomlValue> parseToml(const std::string &content, const QString &fileName)
{
    Parser parser(content);
    try {
        return parser.parseDocument();
    } catch (const ParseFailure &failure) {
        return fail(ErrorCode::Malformed,
                    QStringLiteral("%1:%2: %3").arg(fileName).arg(failure.line).arg(QString::fromStdString(failure.message)));
    }
}

} // namespace Sluice::Security
