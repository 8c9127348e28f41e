using System.Text;

namespace Sluice.Protocol.Grpc;

/// <summary>
/// The <c>grpc-message</c> encoding of the gRPC HTTP/2 spec: UTF-8, then every byte outside
/// 0x20..0x7E, and '%' itself, becomes %XX. Uri.EscapeDataString is NOT this encoding: it also
/// escapes ':' and friends, and grpc-js then shows "%3A" literally.
/// </summary>
public static class GrpcStatusMessage
{
    public static string Encode(string? message)
    {
        if (string.IsNullOrEmpty(message))
        {
            return string.Empty;
        }

        if (!NeedsEncoding(message))
        {
            return message;
        }

        var utf8 = Encoding.UTF8.GetBytes(message);
        var sb = new StringBuilder(utf8.Length * 3);
        foreach (var b in utf8)
        {
            if (b is >= 0x20 and <= 0x7E and not (byte)'%')
            {
                sb.Append((char)b);
            }
            else
            {
                sb.Append('%').Append(HexDigit(b >> 4)).Append(HexDigit(b & 0xF));
            }
        }

        return sb.ToString();
    }

    /// <summary>
    /// Decodes a received <c>grpc-message</c>. Malformed escapes are kept as they are, as the spec
    /// asks (a receiver must not fail the call because of a bad status message).
    /// </summary>
    public static string Decode(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return string.Empty;
        }

        if (!value.Contains('%', StringComparison.Ordinal))
        {
            return value;
        }

        var bytes = new byte[value.Length];
        var n = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '%' && i + 2 < value.Length
                && TryHex(value[i + 1], out var hi) && TryHex(value[i + 2], out var lo))
            {
                bytes[n++] = (byte)((hi << 4) | lo);
                i += 2;
            }
            else if (c <= 0x7F)
            {
                bytes[n++] = (byte)c;
            }
            else
            {
                // A non-ASCII char is not legal in the header; keep it by re-encoding it.
                var extra = Encoding.UTF8.GetBytes(c.ToString());
                if (n + extra.Length > bytes.Length)
                {
                    Array.Resize(ref bytes, bytes.Length + extra.Length + 16);
                }

                extra.CopyTo(bytes, n);
                n += extra.Length;
            }
        }

        return Encoding.UTF8.GetString(bytes, 0, n);
    }

    private static bool NeedsEncoding(string message)
    {
        foreach (var c in message)
        {
            if (c is < (char)0x20 or > (char)0x7E or '%')
            {
                return true;
            }
        }

        return false;
    }

    private static char HexDigit(int v) => (char)(v < 10 ? '0' + v : 'A' + v - 10);

    private static bool TryHex(char c, out int value)
    {
        value = c switch
        {
            >= '0' and <= '9' => c - '0',
            >= 'a' and <= 'f' => c - 'a' + 10,
            >= 'A' and <= 'F' => c - 'A' + 10,
            _ => -1,
        };
        return value >= 0;
    }
}
