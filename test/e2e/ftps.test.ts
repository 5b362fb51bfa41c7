import { describeFtpTransport } from '../helpers/ftp-suite.js';

describeFtpTransport('explicit');
describeFtpTransport('implicit');
