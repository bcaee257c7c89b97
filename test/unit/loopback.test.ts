// Who may call the serve command's admin endpoint: loopback addresses only (no native code).
import { isLoopback } from '../../lib/serve/http';

test('isLoopback: 127.0.0.0/8, ::1 and IPv4-mapped 127.x are loopback; anything else is not', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a)).toBe(true);
  for (const a of ['10.0.0.1', '192.168.1.5', '::ffff:10.0.0.1', 'fe80::1', '0.0.0.0', '128.0.0.1', '127.0.0.1.evil', '', undefined]) expect(isLoopback(a)).toBe(false);
});
